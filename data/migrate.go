package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
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
	if db.Dialect() == Postgres {
		dialect = goose.DialectPostgres
		opts = append(opts, goose.WithSessionLocker(advisoryLock{}))
	}
	p, err := goose.NewProvider(dialect, db.primary, dir, append(opts, goose.WithTableName(MigrationTable))...)
	if errors.Is(err, goose.ErrNoMigrations) {
		return 0, ErrNoMigrations
	}
	if err != nil {
		return 0, fmt.Errorf("data: migrations: %w", err)
	}
	// p.Close would close db.primary: the provider is left to the GC.
	results, err := p.Up(ctx)
	if err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			return len(partial.Applied), fmt.Errorf("data: migration %s: %w", partial.Failed.Source.Path, Classify(partial.Err))
		}
		return len(results), fmt.Errorf("data: migrate: %w", Classify(err))
	}
	return len(results), nil
}

// advisoryLock is a goose session locker that blocks on
// pg_advisory_lock (honouring ctx) rather than polling. The key hashes the
// database, the schema and the table, so that databases and schemas that
// share a server migrate independently.
type advisoryLock struct{}

var _ lock.SessionLocker = advisoryLock{}

const lockKey = `hashtextextended(current_database() || '.' || current_schema() || '.` + MigrationTable + `', 0)`

// SessionLock also lifts statement_timeout on the connection that goose
// then runs the migrations on: a long migration is bounded by the caller's
// context instead.
func (advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `SET statement_timeout = 0`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `RESET statement_timeout`)
		return err
	}
	return nil
}

func (advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock(`+lockKey+`)`); err != nil {
		return err
	}
	_, err := conn.ExecContext(ctx, `RESET statement_timeout`)
	return err
}

// AutoMigrate creates or alters tables to match models, GORM's quick start
// way; versioned migrations (Migrate) are the way to change a database in
// production.
func (db *DB) AutoMigrate(ctx context.Context, models ...any) error {
	return db.gorm.WithContext(ctx).AutoMigrate(models...)
}
