// Package data is the data tier of a threetier service: GORM over
// PostgreSQL in production, or over an embedded pure-Go SQLite file when no
// DSN is configured, with the parts a production service needs around it.
//
// Open returns a *DB that keeps GORM visible (Gorm, WithContext) and adds:
// pool limits and timeouts that make a dead database fail calls fast instead
// of queueing them; statements bounded by their context (the request's
// deadline, which the app tier takes from the tier in front), cancelled on
// the PostgreSQL server when it ends, their connection kept; reads from streaming standbys (Config.Replicas), whose
// replay positions are polled in the background, with read-your-writes
// within a request (WithSession) and across requests (a position in the request's context, which
// app.ReadAfter reads from the client and hands back);
// transactions that rerun on serialization failures and deadlocks (Tx);
// versioned SQL migrations applied once across instances (Migrate); bulk
// inserts over PostgreSQL COPY (BulkInsert); errors classified into a few
// sentinels that carry their HTTP problem and whether they are a failure
// of the database (tier.ProblemError, tier.DependencyError), so that the
// app tier answers them and its breakers judge them by themselves
// (Classify, IsFailure); pool metrics for Prometheus, and the pools' size
// for a guard in front to admit no more calls than they serve (Capacity). A
// *DB is a tier.Tier and a tier.Checker.
//
// Get and Insert are typed shortcuts for the two commonest statements, a
// read by primary key and a single-row insert: on PostgreSQL they run
// through pgx on the same pools without GORM's statement building and
// database/sql's scanning (at about raw pgx's cost), and fall back to GORM
// with identical results where they cannot reproduce it (SQLite, inside a
// Tx, models with hooks or associations; see their documentation).
//
// A key that comes from a request belongs in Get, or in a bound condition
// such as Where("id = ?", key): GORM's First(&row, key) and Find(&rows,
// key) read a string key that is not an integer as SQL, as GORM's security
// notes warn.
package data

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// DB is an open database: the GORM handle plus its pools, migrations and
// metrics. It is safe for concurrent use.
type DB struct {
	gorm     *gorm.DB
	primary  *sql.DB
	replicas []*replica
	watcher  *watcher // of the replicas; nil without any
	cfg      Config
	log      *slog.Logger
	fsys     fs.FS // migrations; nil when none
	metrics  *metrics
	reg      prometheus.Registerer
	conns    connSet  // PostgreSQL connections, for Stop
	plans    sync.Map // reflect.Type -> *typedPlan, for Get and Insert
	start    starter  // Start's wait for a database that does not answer yet
	close    sync.Once
	closeErr error
}

var (
	_ tier.Tier    = (*DB)(nil)
	_ tier.Checker = (*DB)(nil)
	_ tier.Failer  = (*DB)(nil)
)

// An Option adds code to Open: a logger, a metrics registry, migrations.
type Option func(*options)

type options struct {
	log  *slog.Logger
	reg  prometheus.Registerer
	fsys fs.FS
	// tracer gives every statement a span; nil or no-op: none.
	tracer trace.TracerProvider
}

// WithLogger logs statements through l: failures at error level, slow
// statements at warn, everything at debug. The default discards logs.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegistry registers the pool and retry metrics (threetier_data_*)
// with reg. Without it they go nowhere.
func WithRegistry(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithMigrations sets the versioned SQL migrations Start and Migrate apply:
// fsys holds one directory per dialect, "postgres" and "sqlite", each with
// goose-annotated files such as 00001_create_orders.sql.
func WithMigrations(fsys fs.FS) Option { return func(o *options) { o.fsys = fsys } }

// WithTracerProvider gives every statement a client span from tp, a child
// of the span in the statement's context. Without it, or with a no-op
// provider, nothing is traced.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// Open validates cfg, opens the pools and checks that the database answers
// within ctx and cfg.ConnectTimeout. An unreachable database is an error
// matching ErrUnavailable (or ErrTimeout). A service whose database may
// come up after it uses New, and lets Start wait for the database.
func Open(ctx context.Context, cfg Config, opts ...Option) (*DB, error) {
	db, err := New(cfg, opts...)
	if err != nil {
		return nil, err
	}
	if err := db.ping(ctx, true); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// New validates cfg and opens the pools without asking the database
// anything: Start (as Run calls it) connects, waiting for a database that
// does not answer yet (see Start), and applies the migrations.
func New(cfg Config, opts ...Option) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.PgBouncer && cfg.Dialect() == Postgres && o.fsys != nil && cfg.MigrationsDSN == "" {
		return nil, &tier.ConfigError{Field: "MigrationsDSN", Problem: "required with PgBouncer when migrations are given: their advisory lock is a session lock, which transaction pooling does not keep",
			Allowed: "a postgres:// URL that reaches PostgreSQL directly"}
	}
	cfg = cfg.withDefaults()
	db := &DB{cfg: cfg, log: obs.Logger(o.log), fsys: o.fsys, reg: obs.Registerer(o.reg)}
	db.start.failures = make(chan error, 1)

	var dialector gorm.Dialector
	var primaryCC *pgx.ConnConfig
	switch cfg.Dialect() {
	case Postgres:
		primary, cc, err := openPostgres(cfg, cfg.DSN, &db.conns)
		if err != nil {
			return nil, err
		}
		db.primary, primaryCC = primary, cc
		dialector = postgres.New(postgres.Config{Conn: primary})
	default:
		sqlDB, err := openSQLite(cfg)
		if err != nil {
			return nil, err
		}
		db.primary = sqlDB
		dialector = &sqlite.Dialector{Conn: sqlDB}
	}
	g, err := gorm.Open(dialector, &gorm.Config{
		// Single statements are atomic on their own; the implicit
		// transaction GORM wraps around each write costs two round trips.
		// Multi-statement writes belong in Tx.
		SkipDefaultTransaction: true,
		TranslateError:         true,
		DisableAutomaticPing:   true,
		Logger:                 slogLogger{log: db.log, slow: cfg.SlowQuery},
		// With any other TTL a prepared-statement cache runs a goroutine
		// that never exits. pgx already caches prepared statements per
		// connection.
		PrepareStmtTTL: 10 * 365 * 24 * time.Hour,
	})
	if err != nil {
		_ = db.primary.Close()
		return nil, within("open", err)
	}
	db.gorm = g
	if err := db.setup(cfg); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := registerTraceCallbacks(db.gorm, o.tracer, cfg.Dialect()); err != nil {
		_ = db.Close()
		return nil, err
	}
	if len(db.replicas) > 0 {
		db.watcher = db.watch(primaryCC)
	}
	return db, nil
}

// setup opens the replicas and installs callbacks and metrics.
func (db *DB) setup(cfg Config) error {
	for i, dsn := range cfg.Replicas {
		pool, cc, err := openPostgres(cfg, dsn, &db.conns)
		if err != nil {
			return err
		}
		db.replicas = append(db.replicas, &replica{name: "replica" + strconv.Itoa(i), pool: pool, cc: cc})
	}
	if cfg.Dialect() == Postgres {
		if err := registerRoutingCallbacks(db.gorm, db); err != nil {
			return err
		}
	}
	db.metrics = newMetrics(db)
	if err := db.reg.Register(db.metrics); err != nil {
		db.metrics = nil
		return fmt.Errorf("data: register metrics: %w", err)
	}
	if err := registerDeadlineCallbacks(db.gorm, db); err != nil {
		return err
	}
	return registerClassifyCallbacks(db.gorm, db.metrics)
}

// openPostgres opens a pgx pool behind database/sql with cfg's limits, and
// the server-side timeouts sent at connection start. It returns too the
// configuration of a connection outside the pool, for the replica watcher.
func openPostgres(cfg Config, dsn string, conns *connSet) (*sql.DB, *pgx.ConnConfig, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN: say only that it did not parse.
		return nil, nil, &tier.ConfigError{Field: "DSN", Value: redact(dsn), Problem: "cannot parse as a PostgreSQL connection string"}
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = cfg.ConnectTimeout
	}
	watch := cc.Copy()
	watch.ConnectTimeout = cfg.Replica.Timeout
	watch.DialFunc = dialer(cfg.Replica.Timeout).DialContext
	cc.DialFunc = conns.wrap(dialer(cfg.OpTimeout).DialContext)
	cc.BuildContextWatcherHandler = cancelOnServer
	// application_name is one of the few startup parameters PgBouncer
	// tracks per client; the timeouts are set per transaction behind it
	// (see Tx).
	setDefault(cc.RuntimeParams, "application_name", "threetier")
	if cfg.PgBouncer {
		// One round trip per statement with an unnamed statement: nothing
		// server-side outlives the transaction PgBouncer lends us.
		cc.DefaultQueryExecMode = pgx.QueryExecModeExec
		cc.StatementCacheCapacity = 0
		cc.DescriptionCacheCapacity = 0
	} else {
		setDefault(cc.RuntimeParams, "statement_timeout", strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10))
		setDefault(cc.RuntimeParams, "lock_timeout", strconv.FormatInt(cfg.LockTimeout.Milliseconds(), 10))
	}
	sqlDB := stdlib.OpenDB(*cc)
	setPool(sqlDB, cfg)
	return sqlDB, watch, nil
}

func setDefault(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// openSQLite opens the embedded database file in WAL mode with a busy
// timeout, foreign keys on, and BEGIN IMMEDIATE for write transactions so
// that concurrent writers queue on the lock instead of failing on upgrade.
func openSQLite(cfg Config) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	sqlDB, err := sql.Open(sqlite.DriverName, cfg.Path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("data: open sqlite %s: %w", cfg.Path, err)
	}
	if cfg.Path == ":memory:" {
		// Every connection would get its own empty in-memory database.
		cfg.MaxOpenConns, cfg.MaxIdleConns = 1, 1
		cfg.ConnMaxLifetime, cfg.ConnMaxIdleTime = -1, -1
	}
	setPool(sqlDB, cfg)
	return sqlDB, nil
}

func setPool(db *sql.DB, cfg Config) {
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
}

// Gorm returns the GORM handle. Use it as any *gorm.DB; its errors are
// already classified (errors.Is(err, data.ErrNotFound) holds alongside
// errors.Is(err, gorm.ErrRecordNotFound)).
func (db *DB) Gorm() *gorm.DB { return db.gorm }

// WithContext returns a GORM session bound to ctx: inside a Tx closure's
// context it is that transaction, so helpers that take a ctx join it.
func (db *DB) WithContext(ctx context.Context) *gorm.DB {
	if st := db.txFrom(ctx); st != nil {
		return st.tx.WithContext(ctx)
	}
	return db.gorm.WithContext(ctx)
}

// SQL returns the primary's connection pool, for libraries that want a
// *sql.DB.
func (db *DB) SQL() *sql.DB { return db.primary }

// Dialect reports which database this is.
func (db *DB) Dialect() Dialect { return db.cfg.Dialect() }

// Name is "data".
func (db *DB) Name() string { return "data" }

// Stop closes the pools: no statement starts any more, and those in flight
// have until ctx ends to finish. Then, on PostgreSQL, their connections are
// closed under them (they fail, and their transactions roll back) and Stop
// returns ctx's error; an SQLite statement cannot be cut off and runs on.
func (db *DB) Stop(ctx context.Context) error {
	err := db.Close()
	if db.inUse() == 0 {
		return err
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for db.inUse() > 0 {
		select {
		case <-ctx.Done():
			db.conns.closeAll()
			return errors.Join(err, fmt.Errorf("data: statements cut off: %w", ctx.Err()))
		case <-tick.C:
		}
	}
	return err
}

// inUse counts the connections of every pool busy with a statement.
func (db *DB) inUse() int {
	n := db.primary.Stats().InUse
	for _, r := range db.replicas {
		n += r.pool.Stats().InUse
	}
	return n
}

// Close ends Start's wait for the database, if one runs, closes every pool
// and unregisters the metrics. It is idempotent.
func (db *DB) Close() error {
	db.close.Do(func() {
		db.stopWaiting()
		if db.watcher != nil {
			db.watcher.stop()
		}
		if db.metrics != nil {
			db.reg.Unregister(db.metrics)
		}
		errs := []error{db.primary.Close()}
		for _, r := range db.replicas {
			errs = append(errs, r.pool.Close())
		}
		db.closeErr = errors.Join(errs...)
	})
	return db.closeErr
}

// Check reports whether the primary answers within ctx, and fails while
// Start waits for the database (see Started); it is the readiness check
// of the data tier. A replica that does not answer is out of reads (the
// primary serves them) rather than a reason to take the service out.
func (db *DB) Check(ctx context.Context) error {
	if err := db.Started(ctx); err != nil {
		return err
	}
	return db.ping(ctx, false)
}

// ping asks the primary, and with replicas every replica, to answer.
func (db *DB) ping(ctx context.Context, replicas bool) error {
	ctx, cancel := withOpTimeout(ctx, db.cfg.OpTimeout)
	defer cancel()
	if err := db.primary.PingContext(ctx); err != nil {
		return within("primary", err)
	}
	if !replicas {
		return nil
	}
	for i, r := range db.replicas {
		if err := r.pool.PingContext(ctx); err != nil {
			return within(fmt.Sprintf("replica %d", i), err)
		}
	}
	return nil
}

// withOpTimeout bounds ctx by d unless it already has a deadline or d is
// negative (bounds off).
func withOpTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// Capacity reports how many statements the database serves at once: the
// primary's pool (MaxOpenConns), and the standbys' pools added up, which
// serve reads only. A guard in front of the data tier sizes its bulkheads
// from it (app.WithCapacity), so that it admits no more calls than the
// pools can serve and writers cannot take every connection from readers.
func (db *DB) Capacity() (primary, standbys int) {
	primary = db.primary.Stats().MaxOpenConnections
	for _, r := range db.replicas {
		standbys += r.pool.Stats().MaxOpenConnections
	}
	return primary, standbys
}

// saturated reports whether a statement would have to wait for a
// connection: every connection of some pool is in use.
func (db *DB) saturated() bool {
	if s := db.primary.Stats(); s.InUse >= s.MaxOpenConnections {
		return true
	}
	for _, r := range db.replicas {
		if s := r.pool.Stats(); s.InUse >= s.MaxOpenConnections {
			return true
		}
	}
	return false
}
