//go:build unix

package data

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// PostgreSQL crashes in the middle of a write load and comes back: while it
// is down every call fails fast with an unavailable (or timeout) error, the
// service recovers without being restarted, and no acknowledged row is lost.
// Half the writers go through GORM, half through Insert.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	cluster := pgtest.Start(t, "fsync=on", "synchronous_commit=on")
	db := openTest(t, Config{DSN: cluster.DSN(), ConnectTimeout: time.Second, OpTimeout: 3 * time.Second, MaxOpenConns: 8})

	const writers = 4
	var (
		mu          sync.Mutex
		acked       []string
		failed      atomic.Int64
		slowest     atomic.Int64 // nanoseconds of the slowest failed call
		unexpected  []error
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		ackedAfter  [2]atomic.Int64 // by path: GORM, Insert
		restartedAt atomic.Bool
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf("w%d-%d", w, i)
				start := time.Now()
				e := &Event{Kind: "load", Payload: payload, CreatedAt: start}
				var err error
				if w%2 == 0 {
					err = db.WithContext(context.Background()).Create(e).Error
				} else { // the typed fast path
					err = Insert(context.Background(), db, e)
				}
				if err == nil {
					mu.Lock()
					acked = append(acked, payload)
					mu.Unlock()
					if restartedAt.Load() {
						ackedAfter[w%2].Add(1)
					}
					continue
				}
				failed.Add(1)
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
				if !IsFailure(err) {
					mu.Lock()
					unexpected = append(unexpected, err)
					mu.Unlock()
				}
				// Pace the retries of a dead database, as a client would.
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	nAcked := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	wait.For(t, 30*time.Second, "writes before the crash", func() bool { return nAcked() >= 100 })
	down := time.Now()
	cluster.Crash()
	wait.For(t, 30*time.Second, "calls to fail while the server is down", func() bool { return failed.Load() >= 40 })
	// Transactions and health checks fail fast too.
	start := time.Now()
	if err := db.Tx(context.Background(), func(tx *gorm.DB) error { return tx.Create(&Event{Kind: "tx", Payload: "down"}).Error }); !IsFailure(err) {
		t.Errorf("Tx while down: %v, want an unavailable error", err)
	}
	if err := db.Check(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Check while down: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Tx and Check took %v to fail while down", d)
	}
	t.Logf("down for %v: %d calls failed, the slowest in %v", time.Since(down).Round(time.Millisecond), failed.Load(), time.Duration(slowest.Load()))

	cluster.Start()
	restartedAt.Store(true)
	wait.For(t, 60*time.Second, "writes through both paths to succeed again after the restart", func() bool {
		return ackedAfter[0].Load() >= 50 && ackedAfter[1].Load() >= 50
	})
	close(stop)
	wg.Wait()

	// Bounded by the configured timeouts, with room for a loaded machine:
	// the point is that no call waits for the server to come back.
	if d := time.Duration(slowest.Load()); d > 6*time.Second {
		t.Errorf("a failed call took %v: not failing fast (connect timeout 1s, op timeout 3s)", d)
	}
	for i, err := range unexpected {
		if i < 5 {
			t.Errorf("failure not classified as unavailable/timeout: %v", err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cluster.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT payload FROM events")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		stored[p] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, p := range acked {
		if !stored[p] {
			lost++
		}
	}
	t.Logf("%d rows acknowledged, %d stored, %d lost", len(acked), len(stored), lost)
	if lost > 0 {
		t.Errorf("%d acknowledged rows are missing after the crash", lost)
	}
}

// A fast restart (pg_ctl restart -m fast) under reads: every error the
// pooled connections meet, while the server goes down and after it is
// back, is an unavailable (or timeout) failure, never an unclassified one
// that a guard would neither count nor retry.
func TestFastRestartErrorsAreFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	cluster := pgtest.Start(t)
	db := openTest(t, Config{DSN: cluster.DSN(), ConnectTimeout: time.Second, OpTimeout: 3 * time.Second, MaxOpenConns: 4})
	var (
		mu       sync.Mutex
		byError  = map[string]int{}
		bad      []error
		ok       atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		restarts atomic.Bool
	)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				err := db.WithContext(context.Background()).Raw("SELECT 1 FROM pg_sleep(0.002)").Scan(&n).Error
				if err == nil {
					if restarts.Load() {
						ok.Add(1)
					}
					continue
				}
				mu.Lock()
				byError[errKind(err)]++
				if !IsFailure(err) {
					bad = append(bad, err)
				}
				mu.Unlock()
				time.Sleep(time.Millisecond) // a client pacing its retries
			}
		})
	}
	cluster.Restart()
	restarts.Store(true)
	wait.For(t, 30*time.Second, "reads to succeed after the restart", func() bool { return ok.Load() >= 200 })
	close(stop)
	wg.Wait()
	t.Logf("errors during the restart, by kind: %v", byError)
	for _, err := range bad {
		t.Errorf("not classified as a failure: %v", err)
	}
}

// errKind is the innermost part of an error's message, to group errors.
func errKind(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}
