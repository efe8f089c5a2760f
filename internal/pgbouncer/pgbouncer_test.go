package pgbouncer

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Through the PgBouncer, clients reach the upstream database in the schema
// of the upstream DSN, and two clients share one server connection in
// turn: a session setting of one is seen by the other, as transaction
// pooling does.
func TestTransactionPoolingInFrontOfPostgres(t *testing.T) {
	upstream := os.Getenv("THREETIER_TEST_POSTGRES")
	if upstream == "" {
		t.Skip("THREETIER_TEST_POSTGRES is not set")
	}
	s := Start(t, upstream+"&search_path=pg_catalog")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connect := func() *pgx.Conn {
		cc, err := pgx.ParseConfig(s.DSN())
		if err != nil {
			t.Fatal(err)
		}
		cc.DefaultQueryExecMode = pgx.QueryExecModeExec
		c, err := pgx.ConnectConfig(ctx, cc)
		if err != nil {
			t.Fatalf("connect through PgBouncer: %v\n%s", err, s.Log())
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	a, b := connect(), connect()
	var path string
	if err := a.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&path); err != nil || path != "pg_catalog" {
		t.Errorf("search_path through PgBouncer = %q, %v; want pg_catalog", path, err)
	}
	// Both clients idle: PgBouncer lends each the server connection it
	// used last, the only one that exists yet.
	if _, err := a.Exec(ctx, "SET lock_timeout = '4321ms'"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := b.QueryRow(ctx, "SHOW lock_timeout").Scan(&got); err != nil || got != "4321ms" {
		t.Errorf("another client's lock_timeout = %q, %v; want the first client's session setting 4321ms (transaction pooling)", got, err)
	}
	if _, err := a.Exec(ctx, "RESET lock_timeout"); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	s.stop(t)
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("pgbouncer %d still runs after stop", pid)
	}
}
