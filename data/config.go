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
	// Replicas are read-only PostgreSQL DSNs; reads go to them unless the
	// request already wrote (see WithSession). Ignored for SQLite.
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
	// LockTimeout is PostgreSQL's lock_timeout; zero means 5s.
	LockTimeout time.Duration `env:"LOCK_TIMEOUT" json:"lock_timeout,omitempty"`
	// BusyTimeout is how long SQLite waits for a lock; zero means 5s.
	BusyTimeout time.Duration `env:"BUSY_TIMEOUT" json:"busy_timeout,omitempty"`

	// PgBouncer turns off server-side prepared statements so that the pool
	// works behind PgBouncer in transaction mode. PgBouncer must let the
	// statement_timeout and lock_timeout startup parameters through
	// (track_extra_parameters) or ignore them (ignore_startup_parameters,
	// then set them on the role instead).
	PgBouncer bool `env:"PGBOUNCER" json:"pgbouncer,omitempty"`
	// SlowQuery logs statements slower than this at warn level; zero means
	// 200ms, negative turns it off.
	SlowQuery time.Duration `env:"SLOW_QUERY" json:"slow_query,omitempty"`

	// TxAttempts is how many times Tx runs a closure that keeps hitting
	// serialization failures, deadlocks or SQLite busy; zero means 10.
	TxAttempts int `env:"TX_ATTEMPTS" json:"tx_attempts,omitempty"`
	// TxBackoff is the first retry's maximum wait, doubled per attempt
	// (with full jitter) up to TxMaxBackoff; zero means 2ms.
	TxBackoff time.Duration `env:"TX_BACKOFF" json:"tx_backoff,omitempty"`
	// TxMaxBackoff caps the wait between attempts; zero means 250ms.
	TxMaxBackoff time.Duration `env:"TX_MAX_BACKOFF" json:"tx_max_backoff,omitempty"`

	// BulkBatch is the number of rows per INSERT when BulkInsert cannot use
	// COPY (SQLite, or inside a transaction); zero means 500.
	BulkBatch int `env:"BULK_BATCH" json:"bulk_batch,omitempty"`
}

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

// Validate reports every setting that cannot work, as *tier.ConfigError.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, value, problem, allowed string) {
		errs = append(errs, &tier.ConfigError{Var: EnvPrefix + name, Value: value, Problem: problem, Allowed: allowed})
	}
	if c.DSN != "" {
		if err := checkPostgresDSN(c.DSN); err != "" {
			bad("DSN", redact(c.DSN), err, "postgres://user@host:port/db?sslmode=... or empty for SQLite")
		}
	}
	for _, r := range c.Replicas {
		if c.DSN == "" {
			bad("REPLICAS", redact(r), "replicas need a PostgreSQL primary DSN", "")
			break
		}
		if err := checkPostgresDSN(r); err != "" {
			bad("REPLICAS", redact(r), err, "postgres:// URLs separated by commas")
		}
	}
	ints := []struct {
		name string
		v    int
	}{{"MAX_OPEN_CONNS", c.MaxOpenConns}, {"MAX_IDLE_CONNS", c.MaxIdleConns}, {"TX_ATTEMPTS", c.TxAttempts}, {"BULK_BATCH", c.BulkBatch}}
	for _, f := range ints {
		if f.v < 0 {
			bad(f.name, strconv.Itoa(f.v), "must not be negative", "0 for the default, or a positive number")
		}
	}
	durs := []struct {
		name string
		v    time.Duration
	}{
		{"CONN_MAX_LIFETIME", c.ConnMaxLifetime}, {"CONN_MAX_IDLE_TIME", c.ConnMaxIdleTime},
		{"CONNECT_TIMEOUT", c.ConnectTimeout},
		{"STATEMENT_TIMEOUT", c.StatementTimeout}, {"LOCK_TIMEOUT", c.LockTimeout},
		{"BUSY_TIMEOUT", c.BusyTimeout}, {"TX_BACKOFF", c.TxBackoff}, {"TX_MAX_BACKOFF", c.TxMaxBackoff},
	}
	for _, f := range durs {
		if f.v < 0 {
			bad(f.name, f.v.String(), "must not be negative", "0 for the default, or a positive duration")
		}
	}
	if c.MaxOpenConns > 0 && c.MaxIdleConns > c.MaxOpenConns {
		bad("MAX_IDLE_CONNS", strconv.Itoa(c.MaxIdleConns), "exceeds MAX_OPEN_CONNS", "at most "+strconv.Itoa(c.MaxOpenConns))
	}
	return errors.Join(errs...)
}

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
	def(&c.TxBackoff, 2*time.Millisecond)
	def(&c.TxMaxBackoff, 250*time.Millisecond)
	if c.TxAttempts == 0 {
		c.TxAttempts = 10
	}
	if c.BulkBatch == 0 {
		c.BulkBatch = 500
	}
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
