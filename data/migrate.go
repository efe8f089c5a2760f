package data

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/threetier/threetier/tier"
)

// MigrationTable records which migrations were applied.
const MigrationTable = "threetier_migrations"

// ErrNoMigrations is returned by Migrate when no migrations were given
// (WithMigrations) or none exist for this dialect.
var ErrNoMigrations = errors.New("data: no migrations for this dialect")

// Migrate applies the pending migrations for this dialect (the "postgres"
// or "sqlite" directory of the WithMigrations file system) in version
// order, each in its own transaction, and returns how many it applied. On
// PostgreSQL it holds an advisory lock (scoped to the database and schema)
// meanwhile, so that instances starting together apply each migration
// exactly once: the others wait, then find nothing left to do. An SQLite
// file belongs to one process, which needs no such lock.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	if db.fsys == nil {
		return 0, ErrNoMigrations
	}
	dir, err := fs.Sub(db.fsys, string(db.Dialect()))
	if err != nil {
		return 0, fmt.Errorf("data: migrations: %w", err)
	}
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithSlog(db.log)}
	pool := db.primary
	if db.Dialect() == Postgres {
		dialect = goose.DialectPostgres
		opts = append(opts, goose.WithSessionLocker(advisoryLock{unlockTimeout: db.cfg.OpTimeout}))
		if db.cfg.MigrationsDSN != "" {
			if pool, err = db.openMigrations(); err != nil {
				return 0, err
			}
			defer pool.Close()
		}
	}
	p, err := goose.NewProvider(dialect, pool, dir, append(opts, goose.WithTableName(MigrationTable))...)
	if errors.Is(err, goose.ErrNoMigrations) {
		return 0, ErrNoMigrations
	}
	if err != nil {
		return 0, fmt.Errorf("data: migrations: %w", err)
	}
	// p.Close would close the pool, db.primary's too: the provider is left
	// to the GC.
	results, err := p.Up(ctx)
	if err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return len(partial.Applied), within("migration "+partial.Failed.Source.Path, partial.Err)
		}
		return len(results), fmt.Errorf("data: migrate: %w", Classify(err))
	}
	return len(results), nil
}

// openMigrations opens a pool on MigrationsDSN, a direct connection to
// PostgreSQL even when the DB's pools go through PgBouncer. Two
// connections: goose holds the lock on one, and runs migrations written in
// Go on the pool beside it.
func (db *DB) openMigrations() (*sql.DB, error) {
	cfg := db.cfg
	cfg.PgBouncer = false
	cfg.MaxOpenConns, cfg.MaxIdleConns = 2, 2
	pool, _, err := openPostgres(cfg, cfg.MigrationsDSN, &db.conns)
	var ce *tier.ConfigError
	if errors.As(err, &ce) {
		ce.Field = "MigrationsDSN"
	}
	return pool, err
}

// advisoryLock is a goose session locker that blocks on
// pg_advisory_lock (honouring ctx) rather than polling. goose holds it on
// one pinned connection, on which it then runs the migrations. The key
// hashes the database, the schema and the table, so that databases and
// schemas that share a server migrate independently.
type advisoryLock struct{ unlockTimeout time.Duration }

var _ lock.SessionLocker = advisoryLock{}

const lockKey = `hashtextextended(current_database() || '.' || current_schema() || '.` + MigrationTable + `', 0)`

// SessionLock lifts statement_timeout and lock_timeout on the connection:
// waiting for another instance's migrations, and a long migration, are
// bounded by the caller's context instead. lock_timeout is restored once
// the lock is held, so that the migrations' own DDL cannot queue behind a
// long transaction while blocking every statement that comes after it.
func (advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `SET statement_timeout = 0; SET lock_timeout = 0`); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`)
	if err == nil {
		_, err = conn.ExecContext(ctx, `RESET lock_timeout`)
	}
	if err != nil {
		// The connection goes back to the pool: drop it, and with it any
		// setting or lock it still holds.
		discard(conn)
		return err
	}
	return nil
}

// SessionUnlock releases the lock (goose calls it with a context that is
// never cancelled: bound it). A connection that fails to release it is
// discarded, so the server ends its session and the lock with it rather
// than a pooled connection keeping every other instance waiting.
func (l advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	ctx, cancel := withOpTimeout(ctx, l.unlockTimeout)
	defer cancel()
	_, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+lockKey+`); RESET statement_timeout; RESET lock_timeout`)
	if err != nil {
		discard(conn)
	}
	return err
}

// discard makes database/sql close conn instead of reusing it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}

// AutoMigrate creates or alters tables to match models, GORM's quick start
// way; versioned migrations (Migrate) are the way to change a database in
// production.
func (db *DB) AutoMigrate(ctx context.Context, models ...any) error {
	return db.gorm.WithContext(ctx).AutoMigrate(models...)
}
