package data

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// deadDSN is a PostgreSQL DSN on a loopback port where nothing listens.
func deadDSN(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "postgres://postgres@" + addr + "/test?sslmode=disable"
}

func newTest(t *testing.T, cfg Config) *DB {
	t.Helper()
	db, err := New(cfg, WithMigrations(testMigrations(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// A database that does not answer does not fail Start: the DB waits for
// it in the background, not ready meanwhile, and gives up after the start
// timeout with an error that says so, through Failed.
func TestStartWaitsForTheDatabaseUntilTheStartTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	db := newTest(t, Config{DSN: deadDSN(t), Start: StartConfig{Timeout: timeout, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}})
	ctx := context.Background()
	begun := time.Now()
	if err := db.Start(ctx); err != nil {
		t.Fatalf("Start with the database down: %v, want a wait", err)
	}
	for name, check := range map[string]func(context.Context) error{"Check": db.Check, "Started": db.Started} {
		if err := check(ctx); err == nil || !strings.Contains(err.Error(), "waiting") || !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s while waiting: %v, want the wait and the database's error", name, err)
		}
	}
	select {
	case err := <-db.Failed():
		took := time.Since(begun)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "start timeout of 500ms") {
			t.Errorf("gave up with %v, want the start timeout and the database's error", err)
		}
		if took < timeout-100*time.Millisecond || took > timeout+time.Second {
			t.Errorf("gave up after %s, want about %s", took, timeout)
		}
		if cerr := db.Check(ctx); cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("Check after giving up: %v, want %v", cerr, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still waiting 10s after a start timeout of 500ms")
	}
}

// A negative start timeout is the old way: Start fails at once.
func TestStartWithoutWaitingFailsAtOnce(t *testing.T) {
	db := newTest(t, Config{DSN: deadDSN(t), Start: StartConfig{Timeout: -1}})
	if err := db.Start(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Start: %v, want ErrUnavailable", err)
	}
	if err := db.Started(context.Background()); err != nil {
		t.Errorf("Started after a failed Start that did not wait: %v", err)
	}
}

// Stop ends the wait at once, long before the start timeout; no goroutine
// is left (TestMain checks).
func TestStopEndsTheWait(t *testing.T) {
	db := newTest(t, Config{DSN: deadDSN(t)})
	if err := db.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	begun := time.Now()
	if err := db.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begun); took > 2*time.Second {
		t.Errorf("Stop took %s while Start waited for the database", took)
	}
	select {
	case err := <-db.Failed():
		t.Errorf("the DB failed when stopped: %v", err)
	default:
	}
}

func TestStartConfigRejectsNegativeBackoff(t *testing.T) {
	err := Config{Start: StartConfig{Backoff: -time.Second, MaxBackoff: -time.Second}}.Validate()
	for _, field := range []string{"Start.Backoff", "Start.MaxBackoff"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate: %v, want %s named", err, field)
		}
	}
}
