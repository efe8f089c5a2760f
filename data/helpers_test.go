package data

import (
	"cmp"
	"context"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	gosqlite "github.com/glebarez/go-sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/threetier/threetier/internal/pgbouncer"
)

//go:embed testdata/migrations
var testdataFS embed.FS

// envPostgres names the DSN of the PostgreSQL the tests use.
const envPostgres = "THREETIER_TEST_POSTGRES"

// sqliteHooks holds what the SQL function test_hook(marker) calls, by
// marker: a statement that calls it tells the test it is running.
var sqliteHooks sync.Map

func TestMain(m *testing.M) {
	if os.Getenv(envMigrateChild) != "" {
		os.Exit(migrateChild())
	}
	// SQLite functions are registered for the whole process, before any
	// connection opens.
	gosqlite.MustRegisterScalarFunction("test_hook", 1, func(_ *gosqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		if fn, ok := sqliteHooks.Load(args[0]); ok {
			fn.(func())()
		}
		return int64(1), nil
	})
	goleak.VerifyTestMain(m)
}

// Product, Order and Event map the test migrations' tables.
type Product struct {
	ID    int64
	Name  string
	Stock int
}

type Order struct {
	ID        int64
	ProductID int64
	Qty       int
	Note      string
}

type Event struct {
	ID        int64
	Kind      string
	Payload   string
	Amount    int64
	CreatedAt time.Time
}

// testMigrations is the test migrations; extra adds files
// ("postgres/00003_x.sql": body) on top.
func testMigrations(t testing.TB, extra map[string]string) fs.FS {
	fsys, err := migrationsFS(extra)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

func migrationsFS(extra map[string]string) (fs.FS, error) {
	sub, err := fs.Sub(testdataFS, "testdata/migrations")
	if err != nil || len(extra) == 0 {
		return sub, err
	}
	m := fstest.MapFS{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	for p, body := range extra {
		m[p] = &fstest.MapFile{Data: []byte(body)}
	}
	return m, err
}

// postgresDSN returns the test server's DSN, skipping the test when none is
// configured.
func postgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(envPostgres)
	if dsn == "" {
		t.Skipf("%s is not set: skipping the PostgreSQL test (set it to e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", envPostgres)
	}
	return dsn
}

// pgSchema creates a schema of its own for t on the test server and
// returns a DSN whose search_path is that schema; the schema is dropped at
// the end. Tests that use it can run in parallel.
func pgSchema(t testing.TB) string {
	t.Helper()
	base := postgresDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("%s is set but the server does not answer: %v", envPostgres, err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("t_%s_%d", strings.ToLower(sanitize(t.Name())), time.Now().UnixNano()%1e9)
	if len(name) > 60 {
		name = name[len(name)-60:]
		name = "t" + name[1:]
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", name, err)
		}
	})
	return withParam(t, base, "search_path", name)
}

func withParam(t testing.TB, dsn, k, v string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// dialects runs fn once per database: SQLite always, PostgreSQL when
// configured, directly and through PgBouncer in transaction pooling mode.
// cfg starts as the dialect's Config (a temp file, or a schema of its
// own); fn may change it before opening.
func dialects(t *testing.T, fn func(t *testing.T, cfg Config)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, Config{Path: filepath.Join(t.TempDir(), "test.db")})
	})
	postgresBackends(t, fn)
}

// postgresBackends runs fn on PostgreSQL, when configured: directly and
// through PgBouncer in transaction pooling mode, each with a schema of its
// own (directDSN reaches it without PgBouncer).
func postgresBackends(t *testing.T, fn func(t *testing.T, cfg Config)) {
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, Config{DSN: pgSchema(t)})
	})
	t.Run("pgbouncer", func(t *testing.T) {
		t.Parallel()
		fn(t, bouncerConfig(t))
	})
}

// directDSN is cfg's database without PgBouncer, for a test that needs a
// session of its own (a lock holder, an observer).
func directDSN(cfg Config) string { return cmp.Or(cfg.MigrationsDSN, cfg.DSN) }

// bouncerConfig is a schema of t's own on the test server, reached
// through a PgBouncer of t's own in transaction pooling mode; migrations
// go to the server directly.
func bouncerConfig(t testing.TB) Config {
	t.Helper()
	direct := pgSchema(t)
	return Config{DSN: pgbouncer.Start(t, direct).DSN(), PgBouncer: true, MigrationsDSN: direct}
}

// openTest opens cfg with the test migrations applied, closed at the end.
func openTest(t testing.TB, cfg Config, opts ...Option) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, cfg, append([]Option{WithMigrations(testMigrations(t, nil))}, opts...)...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := db.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	return db
}

// openWithReplica opens a primary with one "replica": a second schema that
// never receives the primary's writes and holds a product named
// "replica-only", which makes every routing decision visible.
func openWithReplica(t *testing.T) *DB {
	t.Helper()
	primaryDSN, replicaDSN := pgSchema(t), pgSchema(t)
	replica := openTest(t, Config{DSN: replicaDSN})
	if err := replica.Gorm().Create(&Product{Name: "replica-only", Stock: 1}).Error; err != nil {
		t.Fatal(err)
	}
	return openTest(t, Config{DSN: primaryDSN, Replicas: []string{replicaDSN}})
}

// stopCutsOff stops db with 200ms to spare while a statement that will not
// end on its own is in flight (done reports it): Stop must say it cut the
// statement off, and the statement must end with an error soon after.
func stopCutsOff(t *testing.T, db *DB, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := db.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop: %v; want context.DeadlineExceeded (a statement was cut off)", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the statement cut off by Stop succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the statement in flight still runs 10s after Stop")
	}
}

func count(t testing.TB, db *DB, table string) int64 {
	t.Helper()
	var n int64
	if err := db.Gorm().Table(table).Count(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
