//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// e2eTimeout is the front door's deadline in these tests
// (THREETIER_PROXY_RESPONSE_TIMEOUT): every tier behind it answers within
// it.
const e2eTimeout = 2 * time.Second

// e2eLate is how long after e2eTimeout an answer may come: 10%, or more
// under the race detector's slowness.
func e2eLate() time.Duration {
	if raceEnabled {
		return e2eTimeout + e2eTimeout/4
	}
	return e2eTimeout + e2eTimeout/10
}

// splitShop is the shop split by role in this test's process, as a
// deployment wires it: two app servers on a private PostgreSQL, one web
// server over both, one front door over the web server.
type splitShop struct {
	pg   *pgtest.Server
	apps []listening
	door string
}

// startSplitShop starts the roles with the front door's deadline at
// e2eTimeout and the database guard's per-attempt timeout at 5s: an app
// server that ignored the deadline it is sent would wait for a locked row
// past it.
func startSplitShop(t *testing.T) *splitShop {
	t.Helper()
	t.Setenv("THREETIER_LOG_LEVEL", "error")
	t.Setenv("THREETIER_PROXY_RESPONSE_TIMEOUT", e2eTimeout.String())
	t.Setenv("THREETIER_APP_GUARD_DB_TIMEOUT", "5s")
	t.Setenv("THREETIER_DATA_CONNECT_TIMEOUT", "1s")
	s := &splitShop{pg: pgtest.Start(t)}
	start := roleStarter(t)
	for i := range 2 {
		s.apps = append(s.apps, start("-role", "app", "-listen", "127.0.0.1:0", "-admin", "-", "-drain-delay", "0", "-db", s.pg.DSN(), "-name", fmt.Sprintf("app-%d", i+1)))
	}
	wb := start("-role", "web", "-listen", "127.0.0.1:0", "-admin", "-", "-drain-delay", "0", "-backends", "http://"+s.apps[0].Apps[0]+",http://"+s.apps[1].Apps[0])
	lb := start("-role", "balancer", "-listen", "127.0.0.1:0", "-drain-delay", "0", "-backends", "http://"+wb.Webs[0])
	s.door = "http://" + lb.Doors[0]
	return s
}

// lockWaiters counts the statements waiting for a row lock on the database.
func lockWaiters(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// One deadline, set at the front door, bounds what every tier behind it
// does: the shop split by role on a private PostgreSQL, first with a row
// held, then with the database gone (which ends the server, so last).
func TestDeadlineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	s := startSplitShop(t)
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	t.Run("locked row", func(t *testing.T) { lockedRowAnswersWithinTheDeadline(t, s, client) })
	t.Run("database hangs", func(t *testing.T) { staleCatalogueServedOnceTheBreakerOpens(t, s, client) })
	t.Run("database down", func(t *testing.T) { staleCatalogueServedAtOnceInAnOutage(t, s, client) })
}

// A keyed order for a row another transaction holds: every tier may retry
// it (the web tier on the other app server, the app's guard on the
// database), yet the client has its answer within the front door's
// deadline, and the app server gives up its statement then too, having
// been told the deadline (its own guard would wait 5s an attempt).
func lockedRowAnswersWithinTheDeadline(t *testing.T, s *splitShop, client *http.Client) {
	if a := do(t, client, "POST", s.door+"/api/orders", orderBody([2]int{1, 1}), "Idempotency-Key", "warm-up"); a.status != http.StatusCreated {
		t.Fatalf("an order before the lock: %d %s", a.status, a.body)
	}

	ctx := context.Background()
	observer, err := pgx.Connect(ctx, s.pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close(ctx)
	holder, err := pgx.Connect(ctx, s.pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	lock, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, "SELECT id FROM products WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	a := do(t, client, "POST", s.door+"/api/orders", orderBody([2]int{1, 1}), "Idempotency-Key", "held-row")
	took := time.Since(start)
	t.Logf("order for the held row: %d after %s (deadline %s): %s", a.status, took.Round(time.Millisecond), e2eTimeout, a.body)
	if a.status < 500 || took > e2eLate() {
		t.Errorf("answered %d after %s; want a 5xx within the deadline of %s (+10%%)", a.status, took, e2eTimeout)
	}
	// The app server's statement is cancelled at the deadline it was sent,
	// not when its guard's 5s attempt would end.
	wait.For(t, time.Second, "the app server to give up waiting for the row", func() bool { return lockWaiters(t, observer) == 0 })
	t.Logf("no statement waiting for the row %s after the order was sent", time.Since(start).Round(time.Millisecond))
	if waited := time.Since(start); waited > e2eTimeout+e2eTimeout/2 {
		t.Errorf("statements waited for the row %s; want them cancelled at the deadline of %s", waited, e2eTimeout)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if a := do(t, client, "POST", s.door+"/api/orders", orderBody([2]int{1, 1}), "Idempotency-Key", "after"); a.status != http.StatusCreated {
		t.Errorf("an order once the row is free: %d %s", a.status, a.body)
	}
}

// A database that hangs: its statements time out rather than fail, so
// at first the guard cannot tell; each read ends with the request's
// deadline, and once those timeouts open the breaker, reads are answered
// stale at once (within 300ms of the opening), instead of riding through
// behind the probes until the deadline.
func staleCatalogueServedOnceTheBreakerOpens(t *testing.T, s *splitShop, client *http.Client) {
	listedFreshByBoth(t, s, client)
	opened := watchBreakers(s, client)
	s.pg.Freeze()
	frozen := time.Now()
	type read struct {
		at, took time.Duration // since the freeze
		status   int
		stale    bool
	}
	var mu sync.Mutex
	var reads []read
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for time.Since(frozen) < 3500*time.Millisecond {
				begun := time.Now()
				status, header, err := get(client, s.door+"/api/products")
				if err != nil {
					t.Errorf("a read in the hang: %v", err)
					return
				}
				mu.Lock()
				reads = append(reads, read{begun.Sub(frozen), time.Since(begun), status, header.Get("Cache-Status") != ""})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.pg.Thaw()
	open := <-opened

	var firstStale, slowest time.Duration
	var stale, failed int
	for _, r := range reads {
		slowest = max(slowest, r.took)
		switch {
		case r.stale && r.status == http.StatusOK:
			stale++
			if firstStale == 0 || r.at+r.took < firstStale {
				firstStale = r.at + r.took
			}
		case r.status != http.StatusOK:
			failed++
		}
	}
	t.Logf("database frozen at 0: breaker open at %s, first stale answer at %s; %d reads: %d stale, %d failed (%s within the deadline), slowest %s",
		open.Sub(frozen).Round(time.Millisecond), firstStale.Round(time.Millisecond), len(reads), stale, failed, e2eTimeout,
		slowest.Round(time.Millisecond))
	if slowest > e2eLate() {
		t.Errorf("a read took %s; want every answer within the deadline of %s (+10%%)", slowest, e2eTimeout)
	}
	if open.IsZero() {
		t.Fatal("no breaker opened while the database hung")
	}
	// The race detector slows every request several times over: there the
	// bound is a second, and .ci/run checks 300ms in its run without it.
	staleWithin := 300 * time.Millisecond
	if raceEnabled {
		staleWithin = time.Second
	}
	if stale == 0 || firstStale > open.Sub(frozen)+staleWithin {
		t.Errorf("first stale answer at %s, the breaker open at %s; want one within %s of the opening", firstStale, open.Sub(frozen), staleWithin)
	}
	wait.For(t, 15*time.Second, "a fresh read once the database is back", func() bool {
		status, header, err := get(client, s.door+"/api/products")
		return err == nil && status == http.StatusOK && header.Get("Cache-Status") == ""
	})
}

// A database outage: the catalogue is served stale at once, by the first
// read that finds the database gone (no later than the moment the breaker
// opens), each read answered at once rather than after the guard's
// retries and ride-through.
func staleCatalogueServedAtOnceInAnOutage(t *testing.T, s *splitShop, client *http.Client) {
	listedFreshByBoth(t, s, client)
	opened := watchBreakers(s, client)
	s.pg.Stop()
	down := time.Now()
	var firstStale time.Time
	var slowest time.Duration
	for time.Since(down) < 500*time.Millisecond {
		begun := time.Now()
		a := do(t, client, "GET", s.door+"/api/products", "")
		took := time.Since(begun)
		if a.status != http.StatusOK {
			t.Fatalf("a read %s into the outage: %d %s", begun.Sub(down).Round(time.Millisecond), a.status, a.body)
		}
		if a.header.Get("Cache-Status") != "" && firstStale.IsZero() {
			firstStale = time.Now()
		}
		slowest = max(slowest, took)
	}
	open := <-opened
	t.Logf("database down at 0: breaker open at %s, first stale answer at %s, slowest read %s",
		open.Sub(down).Round(time.Millisecond), firstStale.Sub(down).Round(time.Millisecond), slowest.Round(time.Millisecond))
	if open.IsZero() {
		t.Fatal("no breaker opened in the outage")
	}
	if firstStale.IsZero() || firstStale.After(open.Add(300*time.Millisecond)) {
		t.Errorf("first stale answer at %s, the breaker open at %s; want one within 300ms of the opening", firstStale.Sub(down), open.Sub(down))
	}
	// Riding through would cost a read at least the breaker's first open
	// period (200ms).
	if slowest > 200*time.Millisecond {
		t.Errorf("a read in the outage took %s; want each answered stale at once", slowest)
	}
}

// listedFreshByBoth lists the catalogue until both app servers have
// answered it fresh, and so hold a copy, and waits for both breakers to
// be closed.
func listedFreshByBoth(t *testing.T, s *splitShop, client *http.Client) {
	t.Helper()
	served := map[string]bool{}
	wait.For(t, 10*time.Second, "both app servers to list the catalogue", func() bool {
		a := do(t, client, "GET", s.door+"/api/products", "")
		if a.status == http.StatusOK && a.header.Get("Cache-Status") == "" {
			served[a.header.Get(headerServedBy)] = true
		}
		return len(served) == 2
	})
	wait.For(t, 10*time.Second, "both breakers to close", func() bool {
		for _, l := range s.apps {
			if breakerOpen(client, "http://"+l.Apps[0]+"/readyz") {
				return false
			}
		}
		return true
	})
}

// watchBreakers polls the app servers' /readyz until one shows its
// database guard open, and sends when it first did; it gives up, sending
// the zero time, after 10s.
func watchBreakers(s *splitShop, client *http.Client) <-chan time.Time {
	opened := make(chan time.Time, 1)
	go func() {
		for giveUp := time.Now().Add(10 * time.Second); time.Now().Before(giveUp); time.Sleep(5 * time.Millisecond) {
			for _, l := range s.apps {
				if breakerOpen(client, "http://"+l.Apps[0]+"/readyz") {
					opened <- time.Now()
					return
				}
			}
		}
		opened <- time.Time{}
	}()
	return opened
}

// breakerOpen reports whether the app server's /readyz at url shows its
// database guard open.
func breakerOpen(c *http.Client, url string) bool {
	status, _, body, err := fetch(c, url)
	if err != nil || status == 0 {
		return false
	}
	var r struct{ Guards []app.GuardStatus }
	if json.Unmarshal(body, &r) != nil {
		return false
	}
	for _, g := range r.Guards {
		if g.Name == "db" && g.State == "open" {
			return true
		}
	}
	return false
}

// get is a GET that reports a failure rather than ending the test, for
// the goroutines of a load.
func get(c *http.Client, url string) (int, http.Header, error) {
	status, header, _, err := fetch(c, url)
	return status, header, err
}

func fetch(c *http.Client, url string) (int, http.Header, []byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}
