package data

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/threetier/threetier/tier"
)

func TestConfigFromEnvironment(t *testing.T) {
	var cfg Config
	err := tier.LoadEnvFrom([]string{
		"THREETIER_DATA_DSN=postgres://app:secret@127.0.0.1:5432/shop",
		"THREETIER_DATA_REPLICAS=postgres://127.0.0.1:5433/shop,postgres://127.0.0.1:5434/shop",
		"THREETIER_DATA_MAX_OPEN_CONNS=20",
		"THREETIER_DATA_STATEMENT_TIMEOUT=2s",
		"THREETIER_DATA_PGBOUNCER=true",
	}, EnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dialect() != Postgres || len(cfg.Replicas) != 2 || cfg.MaxOpenConns != 20 || cfg.StatementTimeout != 2*time.Second || !cfg.PgBouncer {
		t.Errorf("loaded %+v", cfg)
	}
	if (Config{}).Dialect() != SQLite {
		t.Error("the zero Config is not SQLite")
	}
	d := Config{}.withDefaults()
	if d.Path != "threetier.db" || d.MaxOpenConns != 4 || d.OpTimeout != 10*time.Second || d.Tx.Attempts != 10 {
		t.Errorf("defaults %+v", d)
	}
}

func TestInvalidConfigIsAClearError(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{DSN: "mysql://root@127.0.0.1/x"}, "DSN"},
		{Config{DSN: "postgres://u:hunter2@127.0.0.1/x", MaxOpenConns: 2, MaxIdleConns: 5}, "MaxIdleConns"},
		{Config{Replicas: []string{"postgres://127.0.0.1/x"}}, "need a PostgreSQL primary"},
		{Config{MaxOpenConns: -1}, "MaxOpenConns"},
		{Config{StatementTimeout: -time.Second}, "StatementTimeout"},
		{Config{DSN: "postgres://127.0.0.1/x", Replicas: []string{"http://127.0.0.1/"}}, "Replicas[0]"},
		{Config{Tx: TxConfig{Backoff: -time.Second}}, "Tx.Backoff"},
		{Config{DSN: "postgres://127.0.0.1:notaport/x"}, "DSN"},
	}
	for _, c := range cases {
		_, err := Open(context.Background(), c.cfg)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v): %v, want a ConfigError about %s", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestConfigErrorsNameTheVariableUnderTheLoadedPrefix(t *testing.T) {
	err := tier.LoadEnvFrom([]string{
		"THREETIER_DATA_REPORTS_TX_BACKOFF=-1s",
		"THREETIER_DATA_REPORTS_REPLICAS=postgres://127.0.0.1/x",
		"THREETIER_DATA_REPORTS_TX_ATTEMPTS=-1", // no retries: not an error
	}, EnvPrefix+"REPORTS_", &Config{})
	want := "THREETIER_DATA_REPORTS_REPLICAS=\"postgres://127.0.0.1/x\": replicas need a PostgreSQL primary DSN\n" +
		"THREETIER_DATA_REPORTS_TX_BACKOFF=\"-1s\": must not be negative (allowed: 0 for the default, or a positive duration)"
	if err == nil || err.Error() != want {
		t.Fatalf("err =\n%v\nwant\n%s", err, want)
	}
}

// A database that is not there fails Open quickly, as unavailable.
func TestOpenFailsFastWhenTheDatabaseIsDown(t *testing.T) {
	start := time.Now()
	_, err := Open(context.Background(), Config{DSN: "postgres://postgres@127.0.0.1:1/none?sslmode=disable", ConnectTimeout: time.Second})
	if !errors.Is(err, ErrUnavailable) || !IsFailure(err) {
		t.Errorf("Open on a closed port: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
	_, err = Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "no", "such", "dir.db")})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("SQLite in a missing directory: %v, want ErrUnavailable", err)
	}
}

func TestSQLiteSettings(t *testing.T) {
	db := openTest(t, Config{Path: filepath.Join(t.TempDir(), "s.db"), BusyTimeout: 1234 * time.Millisecond})
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "1234"} {
		var got string
		if err := db.Gorm().Raw("PRAGMA " + pragma).Scan(&got).Error; err != nil || got != want {
			t.Errorf("PRAGMA %s = %q, %v; want %s", pragma, got, err, want)
		}
	}
	if db.Name() != "data" || db.Dialect() != SQLite || db.Check(context.Background()) != nil {
		t.Error("Name, Dialect or Check")
	}
}

// The timeouts hold in every transaction, directly and through PgBouncer,
// where they are SET LOCAL: a session setting would stay on a server
// connection PgBouncer then lends to other clients. Prepared statements:
// cached per connection directly, none at all in PgBouncer mode.
func TestPostgresSettings(t *testing.T) {
	postgresBackends(t, func(t *testing.T, cfg Config) {
		cfg.StatementTimeout, cfg.LockTimeout = 1500*time.Millisecond, 700*time.Millisecond
		db := openTest(t, cfg)
		g := db.Gorm()
		ctx := context.Background()
		err := db.Tx(ctx, func(tx *gorm.DB) error {
			for setting, want := range map[string]string{"statement_timeout": "1500ms", "lock_timeout": "700ms", "application_name": "threetier"} {
				var got string
				if err := tx.Raw("SHOW " + setting).Scan(&got).Error; err != nil || got != want {
					t.Errorf("in a Tx: %s = %q, %v; want %s", setting, got, err, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.Tx(ctx, func(tx *gorm.DB) error { return tx.Exec("SELECT pg_sleep(5)").Error }, Attempts(1))
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("a Tx sleeping beyond statement_timeout: %v, want ErrTimeout", err)
		}
		db.SQL().SetMaxOpenConns(1)
		var outside string
		if err := g.Raw("SHOW statement_timeout").Scan(&outside).Error; err != nil {
			t.Fatal(err)
		}
		if cfg.PgBouncer && outside == "1500ms" {
			t.Error("a Tx's statement_timeout outlived it on the server connection")
		}
		if !cfg.PgBouncer && outside != "1500ms" {
			t.Errorf("statement_timeout = %q outside a Tx, want 1500ms from the startup parameters", outside)
		}
		for range 3 {
			var p Product
			_ = g.Where("name = ?", "x").Find(&p).Error
		}
		var prepared int
		if err := g.Raw("SELECT count(*) FROM pg_prepared_statements").Scan(&prepared).Error; err != nil {
			t.Fatal(err)
		}
		if cfg.PgBouncer && prepared != 0 || !cfg.PgBouncer && prepared == 0 {
			t.Errorf("pgbouncer=%v: %d prepared statements", cfg.PgBouncer, prepared)
		}
	})
}

// Behind PgBouncer, migrations need a direct connection for their lock: a
// missing one is a clear error before anything connects.
func TestPgBouncerMigrationsNeedADirectDSN(t *testing.T) {
	_, err := New(Config{DSN: "postgres://127.0.0.1:6432/x", PgBouncer: true}, WithMigrations(testMigrations(t, nil)))
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Field != "MigrationsDSN" {
		t.Errorf("PgBouncer with migrations and no MigrationsDSN: %v, want a ConfigError about MigrationsDSN", err)
	}
	db, err := New(Config{DSN: "postgres://127.0.0.1:6432/x", PgBouncer: true})
	if err != nil {
		t.Errorf("PgBouncer without migrations: %v", err)
	} else {
		_ = db.Close()
	}
	err = tier.LoadEnvFrom([]string{"THREETIER_DATA_MIGRATIONS_DSN=postgres://u:hunter2@127.0.0.1/x"}, EnvPrefix, &Config{})
	if want := `THREETIER_DATA_MIGRATIONS_DSN="postgres://u@127.0.0.1/x": a migrations DSN needs a PostgreSQL primary DSN`; err == nil || err.Error() != want {
		t.Errorf("MigrationsDSN without DSN: %v, want %s", err, want)
	}
	if err := (Config{DSN: "postgres://127.0.0.1/x", MigrationsDSN: "mysql://127.0.0.1/x"}).Validate(); err == nil || !strings.Contains(err.Error(), "MigrationsDSN") {
		t.Errorf("a MigrationsDSN that is not PostgreSQL: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	db := openTest(t, Config{Path: filepath.Join(t.TempDir(), "m.db")}, WithRegistry(reg))
	var p Product
	_ = db.Gorm().First(&p, 42).Error
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = true
		if f.GetName() == "threetier_data_errors_total" {
			if l := f.GetMetric()[0].GetLabel()[0]; l.GetValue() != "not_found" {
				t.Errorf("errors_total label %v", l)
			}
		}
	}
	for _, name := range []string{"threetier_data_connections_open", "threetier_data_connections_in_use", "threetier_data_connections_max", "threetier_data_pool_waits_total", "threetier_data_tx_retries_total", "threetier_data_errors_total"} {
		if !seen[name] {
			t.Errorf("metric %s missing", name)
		}
	}
	// Close unregisters, so the registry can take a new DB.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := openTest(t, Config{Path: filepath.Join(t.TempDir(), "m2.db")}, WithRegistry(reg))
	_ = db2
}
