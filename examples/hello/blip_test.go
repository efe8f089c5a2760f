//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// TestHelloRidesThroughAFastRestart runs the service on a private
// PostgreSQL server, keeps eight keep-alive clients reading /api/hello
// through the web tier, and restarts PostgreSQL (pg_ctl restart -m fast)
// under them: no read may fail. The handlers' guarded reads serve GETs, so
// they wait out the breaker that the restart opens, with nothing marked.
func TestHelloRidesThroughAFastRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	pg := pgtest.Start(t)
	t.Setenv("THREETIER_DATA_DSN", pg.DSN())
	t.Setenv("THREETIER_WEB_LISTEN", "127.0.0.1:0")
	t.Setenv("THREETIER_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	t.Setenv("THREETIER_ADMIN_LISTEN", "-")
	ready := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-apps", "2"}, io.Discard, ready) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	var url string
	select {
	case l := <-ready:
		url = "http://" + l.Site + "/api/hello"
	case err := <-done:
		t.Fatalf("service ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready within 30s")
	}

	const clients = 8
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		total    int
		failures []string
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for range clients {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				failure := ""
				resp, err := client.Get(url)
				if err != nil {
					failure = err.Error()
				} else {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failure = fmt.Sprintf("%d %s", resp.StatusCode, body)
					}
				}
				mu.Lock()
				total++
				if failure != "" {
					failures = append(failures, failure)
				}
				mu.Unlock()
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return total
	}
	wait.For(t, 30*time.Second, "200 GETs before the restart", func() bool { return count() >= 200 })
	before := count()
	start := time.Now()
	pg.Restart()
	t.Logf("pg_ctl restart -m fast took %s", time.Since(start).Round(time.Millisecond))
	wait.For(t, 30*time.Second, "1000 GETs after the restart", func() bool { return count() >= before+1000 })

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d GETs, %d failed", total, len(failures))
	if len(failures) > 0 {
		t.Errorf("%d of %d GETs failed across the restart, want 0; the first: %s", len(failures), total, failures[0])
	}
}
