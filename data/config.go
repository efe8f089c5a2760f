package data

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/threetier/threetier/tier"
)

// EnvPrefix is the prefix of the data tier's environment variables:
// tier.LoadEnv(data.EnvPrefix, &cfg) reads THREETIER_DATA_DSN and friends.
const EnvPrefix = tier.EnvPrefix + "DATA_"

// Config describes one database. The zero value opens the embedded SQLite
// file "threetier.db" in the working directory with the defaults below;
// a postgres:// DSN opens PostgreSQL instead.
type Config struct {
	// DSN is a postgres:// (or postgresql://) URL. Empty means the embedded
	// SQLite database at Path.
	DSN string `env:"DSN" json:"-"`
	// Replicas are read-only PostgreSQL DSNs (streaming standbys); reads
	// go to those in reads (see ReplicaConfig) unless the request already
	// wrote (see WithSession) or must see a position they have not
	// replayed (see app.ReadAfter). Ignored for SQLite.
	Replicas []string `env:"REPLICAS" envSeparator:"," json:"-"`
	// Path is the SQLite file; zero means "threetier.db".
	Path string `env:"SQLITE_PATH" json:"path,omitempty"`

	// MaxOpenConns caps the pool; zero means 10 (PostgreSQL) or 4 (SQLite).
	MaxOpenConns int `env:"MAX_OPEN_CONNS" json:"max_open_conns,omitempty"`
	// MaxIdleConns caps idle connections; zero means MaxOpenConns.
	MaxIdleConns int `env:"MAX_IDLE_CONNS" json:"max_idle_conns,omitempty"`
	// ConnMaxLifetime recycles connections; zero means 30m.
	ConnMaxLifetime time.Duration `env:"CONN_MAX_LIFETIME" json:"conn_max_lifetime,omitempty"`
	// ConnMaxIdleTime closes idle connections; zero means 5m.
	ConnMaxIdleTime time.Duration `env:"CONN_MAX_IDLE_TIME" json:"conn_max_idle_time,omitempty"`

	// ConnectTimeout bounds dialing one PostgreSQL connection; zero means 3s.
	ConnectTimeout time.Duration `env:"CONNECT_TIMEOUT" json:"connect_timeout,omitempty"`
	// OpTimeout bounds, when the caller's context has no deadline: each
	// transaction; each statement that has to wait for a pooled connection;
	// and, on Linux, how long a PostgreSQL connection may go without the
	// server acknowledging what was sent (TCP_USER_TIMEOUT), so that a dead
	// or saturated database fails calls instead of queueing them. Zero
	// means 10s; negative turns the bounds off.
	OpTimeout time.Duration `env:"OP_TIMEOUT" json:"op_timeout,omitempty"`
	// StatementTimeout is PostgreSQL's statement_timeout; zero means 30s.
	StatementTimeout time.Duration `env:"STATEMENT_TIMEOUT" json:"statement_timeout,omitempty"`
	// LockTimeout is PostgreSQL's lock_timeout; zero means 5s. A Tx that
	// may write, run with a deadline that comes sooner, waits for a row
	// lock until a little before that deadline instead (see Tx).
	LockTimeout time.Duration `env:"LOCK_TIMEOUT" json:"lock_timeout,omitempty"`
	// BusyTimeout is how long SQLite waits for a lock; zero means 5s.
	BusyTimeout time.Duration `env:"BUSY_TIMEOUT" json:"busy_timeout,omitempty"`

	// PgBouncer makes the pools work behind PgBouncer in transaction
	// pooling mode, where a server connection is ours for one transaction
	// only: no server-side prepared statements (each statement is parsed
	// anew, in the round trip that runs it); StatementTimeout and
	// LockTimeout set with SET LOCAL at the start of each Tx instead of as
	// startup parameters, which PgBouncer refuses (statements outside a
	// Tx get the role's settings, ALTER ROLE ... SET statement_timeout,
	// and the caller's deadline); and
	// migrations on MigrationsDSN. PgBouncer 1.21 and later can keep
	// prepared statements across transactions (max_prepared_statements),
	// but this mode does not rely on it, so any version works.
	PgBouncer bool `env:"PGBOUNCER" json:"pgbouncer,omitempty"`
	// MigrationsDSN is where Migrate connects, a postgres:// URL that
	// reaches PostgreSQL directly; empty means DSN. It is required when
	// PgBouncer is on and migrations are given: the advisory lock that
	// keeps instances from migrating at once is a session lock, which
	// transaction pooling does not keep.
	MigrationsDSN string `env:"MIGRATIONS_DSN" json:"-"`
	// SlowQuery logs statements slower than this at warn level; zero means
	// 200ms, negative turns it off.
	SlowQuery time.Duration `env:"SLOW_QUERY" json:"slow_query,omitempty"`

	// Tx bounds how Tx retries a closure that keeps hitting serialization
	// failures, deadlocks or SQLite busy (THREETIER_DATA_TX_ATTEMPTS, ...).
	Tx TxConfig `envPrefix:"TX_" json:"tx"`

	// Start bounds how Start waits for a database that does not answer
	// yet (THREETIER_DATA_START_TIMEOUT, ...).
	Start StartConfig `envPrefix:"START_" json:"start"`

	// BulkBatch is the number of rows per INSERT when BulkInsert cannot use
	// COPY (SQLite, or inside a transaction); zero means 500.
	BulkBatch int `env:"BULK_BATCH" json:"bulk_batch,omitempty"`

	// Replica bounds how the replicas are watched and when they serve
	// reads (THREETIER_DATA_REPLICA_MAX_LAG, ...).
	Replica ReplicaConfig `envPrefix:"REPLICA_" json:"replica"`
}

// ReplicaConfig says how often the data tier asks each replica how far it
// has replayed, and how far behind the primary it may be and still serve
// reads. Its knobs are named as StartConfig names its own.
type ReplicaConfig struct {
	// PollInterval is how often each replica (and the primary) is asked
	// for its position; zero means 100ms, negative is invalid.
	PollInterval time.Duration `env:"POLL_INTERVAL" json:"poll_interval,omitempty"`
	// Timeout bounds one such question: a replica that does not answer
	// within it is out of reads; zero means 1s, negative is invalid.
	Timeout time.Duration `env:"TIMEOUT" json:"timeout,omitempty"`
	// MaxLag is how far behind the primary, in time, a replica in reads may
	// fall and still serve them; zero means 5s, negative means no bound. A
	// replica out of reads (down, or past MaxLag) comes back only once it
	// replays within PollInterval of the primary.
	MaxLag time.Duration `env:"MAX_LAG" json:"max_lag,omitempty"`
}

// withDefaults fills ReplicaConfig's zero fields.
func (c ReplicaConfig) withDefaults() ReplicaConfig {
	if c.PollInterval == 0 {
		c.PollInterval = 100 * time.Millisecond
	}
	if c.Timeout == 0 {
		c.Timeout = time.Second
	}
	if c.MaxLag == 0 {
		c.MaxLag = 5 * time.Second
	}
	return c
}

// TxConfig bounds the retries of a transaction. Its knobs are named as
// balancer.RetryConfig and app.GuardConfig name theirs; it sits in a
// struct of its own because Config's other fields are not about retries,
// and a bare Config.Attempts would not say attempts of what.
type TxConfig struct {
	// Attempts is how many times Tx runs the closure, the first included;
	// zero means 10, 1 or negative means no retries.
	Attempts int `env:"ATTEMPTS" json:"attempts,omitempty"`
	// Backoff is the first retry's maximum wait, doubled per attempt (with
	// full jitter) up to MaxBackoff; zero means 2ms, negative is invalid.
	Backoff time.Duration `env:"BACKOFF" json:"backoff,omitempty"`
	// MaxBackoff caps the wait between attempts; zero means 250ms, negative
	// is invalid.
	MaxBackoff time.Duration `env:"MAX_BACKOFF" json:"max_backoff,omitempty"`
}

// StartConfig bounds Start's wait for a database that does not answer
// yet: in a deployment the database comes up beside the app, or after it.
// Its knobs are named as TxConfig names its own.
type StartConfig struct {
	// Timeout is how long Start keeps trying to reach the database before
	// the data tier fails; zero means DefaultStartTimeout, long enough for
	// a database started alongside, negative means no waiting (Start fails
	// when the database does not answer at once).
	Timeout time.Duration `env:"TIMEOUT" json:"timeout,omitempty"`
	// Backoff is the first wait between tries, at most; it doubles (with
	// full jitter) up to MaxBackoff. Zero means 100ms and 1s; negative is
	// invalid.
	Backoff    time.Duration `env:"BACKOFF" json:"backoff,omitempty"`
	MaxBackoff time.Duration `env:"MAX_BACKOFF" json:"max_backoff,omitempty"`
}

// DefaultStartTimeout is how long Start waits for the database by
// default: a PostgreSQL that starts with the app, and initialises its
// files on its first start, answers well within it.
const DefaultStartTimeout = time.Minute

// Dialect names the database behind a DB; it is also the directory of the
// migrations for that database.
type Dialect string

// The dialects Open supports.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Dialect reports which database the DSN selects.
func (c Config) Dialect() Dialect {
	if c.DSN == "" {
		return SQLite
	}
	return Postgres
}

// Validate reports every setting that cannot work, as *tier.ConfigError
// naming the Config field (tier.LoadEnv names the variable).
func (c Config) Validate() error {
	var errs []error
	bad := func(field, value, problem, allowed string) {
		errs = append(errs, &tier.ConfigError{Field: field, Value: value, Problem: problem, Allowed: allowed})
	}
	if c.DSN != "" {
		if err := checkPostgresDSN(c.DSN); err != "" {
			bad("DSN", redact(c.DSN), err, "postgres://user@host:port/db?sslmode=... or empty for SQLite")
		}
	}
	if c.MigrationsDSN != "" {
		if c.DSN == "" {
			bad("MigrationsDSN", redact(c.MigrationsDSN), "a migrations DSN needs a PostgreSQL primary DSN", "")
		} else if err := checkPostgresDSN(c.MigrationsDSN); err != "" {
			bad("MigrationsDSN", redact(c.MigrationsDSN), err, "a postgres:// URL that reaches PostgreSQL directly")
		}
	}
	for i, r := range c.Replicas {
		field := "Replicas[" + strconv.Itoa(i) + "]"
		if c.DSN == "" {
			bad(field, redact(r), "replicas need a PostgreSQL primary DSN", "")
			break
		}
		if err := checkPostgresDSN(r); err != "" {
			bad(field, redact(r), err, "postgres:// URLs separated by commas")
		}
	}
	ints := []struct {
		name string
		v    int
	}{{"MaxOpenConns", c.MaxOpenConns}, {"MaxIdleConns", c.MaxIdleConns}, {"BulkBatch", c.BulkBatch}}
	for _, f := range ints {
		if f.v < 0 {
			bad(f.name, strconv.Itoa(f.v), "must not be negative", "0 for the default, or a positive number")
		}
	}
	durs := []struct {
		name string
		v    time.Duration
	}{
		{"ConnMaxLifetime", c.ConnMaxLifetime}, {"ConnMaxIdleTime", c.ConnMaxIdleTime},
		{"ConnectTimeout", c.ConnectTimeout},
		{"StatementTimeout", c.StatementTimeout}, {"LockTimeout", c.LockTimeout},
		{"BusyTimeout", c.BusyTimeout}, {"Tx.Backoff", c.Tx.Backoff}, {"Tx.MaxBackoff", c.Tx.MaxBackoff},
		{"Start.Backoff", c.Start.Backoff}, {"Start.MaxBackoff", c.Start.MaxBackoff},
		{"Replica.PollInterval", c.Replica.PollInterval}, {"Replica.Timeout", c.Replica.Timeout},
	}
	for _, f := range durs {
		if f.v < 0 {
			bad(f.name, f.v.String(), "must not be negative", "0 for the default, or a positive duration")
		}
	}
	if c.MaxOpenConns > 0 && c.MaxIdleConns > c.MaxOpenConns {
		bad("MaxIdleConns", strconv.Itoa(c.MaxIdleConns), "exceeds MaxOpenConns", "at most "+strconv.Itoa(c.MaxOpenConns))
	}
	return errors.Join(errs...)
}

// DefaultConfig returns a Config with every default spelled out, for the
// embedded SQLite database (a PostgreSQL DSN set afterwards keeps SQLite's
// MaxOpenConns of 4 unless it is set too).
func DefaultConfig() Config { return Config{}.withDefaults() }

// withDefaults fills every zero field with its documented default.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Path == "" {
		c.Path = "threetier.db"
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 10
		if c.Dialect() == SQLite {
			c.MaxOpenConns = 4
		}
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = c.MaxOpenConns
	}
	def(&c.ConnMaxLifetime, 30*time.Minute)
	def(&c.ConnMaxIdleTime, 5*time.Minute)
	def(&c.ConnectTimeout, 3*time.Second)
	def(&c.OpTimeout, 10*time.Second)
	def(&c.StatementTimeout, 30*time.Second)
	def(&c.LockTimeout, 5*time.Second)
	def(&c.BusyTimeout, 5*time.Second)
	def(&c.SlowQuery, 200*time.Millisecond)
	def(&c.Tx.Backoff, 2*time.Millisecond)
	def(&c.Tx.MaxBackoff, 250*time.Millisecond)
	def(&c.Start.Timeout, DefaultStartTimeout)
	def(&c.Start.Backoff, 100*time.Millisecond)
	def(&c.Start.MaxBackoff, time.Second)
	if c.Tx.Attempts == 0 {
		c.Tx.Attempts = 10
	}
	if c.BulkBatch == 0 {
		c.BulkBatch = 500
	}
	c.Replica = c.Replica.withDefaults()
	return c
}

func checkPostgresDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "not a URL"
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "unsupported scheme " + strings.TrimSpace(u.Scheme)
	}
	return ""
}

// redact shows a DSN in error messages as scheme://user@host/path only: no
// password, no parameters. One that is not a well-formed postgres URL is
// not shown at all, since where its password sits is anyone's guess.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Opaque != "" || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "(DSN hidden)"
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.User != nil {
		shown.User = url.User(u.User.Username())
	}
	return shown.String()
}
