//go:build unix

package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// An app server started before its PostgreSQL serves at once, alive and
// not ready, waits for the database, and once it answers applies the
// migrations and is ready: the database may come up beside the app or
// after it.
func TestAppRoleWaitsForItsDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	pg := pgtest.Start(t)
	pg.Stop()
	t.Setenv("THREETIER_LOG_LEVEL", "error")
	t.Setenv("THREETIER_DATA_START_BACKOFF", "20ms")
	t.Setenv("THREETIER_DATA_START_MAX_BACKOFF", "200ms")
	s := startRun(t, "-role", "app", "-listen", "127.0.0.1:0", "-db", pg.DSN(), "-name", "app-1")
	base := "http://" + s.l.Apps[0]

	if a := do(t, s.client, "GET", base+"/healthz", ""); a.status != http.StatusOK {
		t.Errorf("/healthz %d while the database is down, want 200 (alive)", a.status)
	}
	a := do(t, s.client, "GET", base+"/readyz", "")
	if a.status != http.StatusServiceUnavailable || !strings.Contains(string(a.body), "waiting") {
		t.Errorf("/readyz %d %s while the database is down, want 503 saying it waits", a.status, a.body)
	}
	if a := do(t, s.client, "GET", base+"/api/products", ""); a.status != http.StatusServiceUnavailable {
		t.Errorf("/api/products %d while the database is down, want 503", a.status)
	}

	pg.Start()
	wait.For(t, 20*time.Second, "the app server to be ready", func() bool {
		return do(t, s.client, "GET", base+"/readyz", "").status == http.StatusOK
	})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var applied int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+data.MigrationTable+" WHERE version_id > 0").Scan(&applied); err != nil || applied == 0 {
		t.Fatalf("migrations applied: %d, %v; want the shop's", applied, err)
	}
	if a := do(t, s.client, "GET", base+"/api/products", ""); a.status != http.StatusOK {
		t.Errorf("/api/products %d once ready: %s", a.status, a.body)
	}
}

// A database that does not come within THREETIER_DATA_START_TIMEOUT ends
// the role with an error that says so, after serving as not ready.
func TestAppRoleHonoursTheStartTimeout(t *testing.T) {
	dead := "postgres://postgres@127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0]) + "/shop?sslmode=disable"
	t.Setenv("THREETIER_LOG_LEVEL", "error")
	t.Setenv("THREETIER_DATA_START_TIMEOUT", "1s")
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	begun := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- run(ctx, []string{"-role", "app", "-listen", "127.0.0.1:0", "-db", dead}, io.Discard, ready)
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the role ended before serving: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the role did not serve within 10s")
	}
	select {
	case err := <-done:
		took := time.Since(begun)
		if err == nil || !strings.Contains(err.Error(), "start timeout of 1s") || !strings.Contains(err.Error(), "database unavailable") {
			t.Errorf("the role ended with %v, want the start timeout and the database's error", err)
		}
		if took < 900*time.Millisecond {
			t.Errorf("gave up after %s, before the start timeout of 1s", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the role still runs 15s after a start timeout of 1s")
	}
}
