//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/internal/pgtest"
	"github.com/threetier/threetier/internal/wait"
)

// TestRollingRestart runs three app servers as processes behind a pool,
// as a web server or any Go client has, and restarts each in turn with
// SIGTERM while reads and orders without an Idempotency-Key (which a pool
// never sends twice) flow: not one request may fail, refused connects
// included. It holds because a stopping server drains: its /readyz fails
// and its answers say it is leaving for THREETIER_APP_DRAIN_DELAY before
// it stops accepting, and the pool takes it out on the first such answer.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the shop and starts four processes")
	}
	pg := pgtest.Start(t, "max_connections=60")
	bin := buildShop(t)
	env := append(cleanEnv(), "THREETIER_LOG_LEVEL=warn", "THREETIER_APP_DRAIN_DELAY=1s")
	ports := freePorts(t, 3)
	logs := t.TempDir()
	var apps []*proc
	var urls []string
	for i, port := range ports {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		name := fmt.Sprintf("app-%d", i+1)
		apps = append(apps, &proc{t: t, name: name, bin: bin, env: env, ready: "http://" + addr + "/readyz",
			log: filepath.Join(logs, name+".log"), args: []string{"-role", "app", "-listen", addr, "-db", pg.DSN(), "-name", name}})
		urls = append(urls, "http://"+addr)
	}
	stopOnCleanup(t, apps)
	for _, p := range apps {
		p.start()
		p.waitReady(20 * time.Second) // one at a time: the migrations' lock is not under test
	}

	_, products := stockUp(t, pg.DSN())

	pool, err := balancer.New(balancer.Config{
		Name: "apps", Endpoints: urls,
		Health: balancer.HealthConfig{Path: "/readyz", Interval: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := pool.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer pool.Stop(context.Background())
	client := pool.Client()
	client.Timeout = 10 * time.Second

	var mu sync.Mutex
	sent, failures := 0, map[string]int{}
	record := func(what string, resp *http.Response, body []byte, err error, want int) {
		mu.Lock()
		defer mu.Unlock()
		sent++
		switch {
		case err != nil:
			failures[what+": "+errKind(err)]++
		case resp.StatusCode != want:
			failures[fmt.Sprintf("%s: %d %s", what, resp.StatusCode, body)]++
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var resp *http.Response
				var err error
				what, want := "read", http.StatusOK
				// Orders from one worker only: concurrent orders can lose
				// to each other's serializable transactions (a 503 to
				// retry), which says nothing of restarts.
				if w == 0 && i%2 == 0 {
					what, want = "order", http.StatusCreated
					resp, err = client.Post("http://shop/api/orders", "application/json", strings.NewReader(orderBody([2]int{int(products[i%len(products)].ID), 1})))
				} else {
					resp, err = client.Get("http://shop/api/products")
				}
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				record(what, resp, body, err, want)
			}
		})
	}
	under := func(n int) {
		mu.Lock()
		target := sent + n
		mu.Unlock()
		wait.For(t, 30*time.Second, fmt.Sprintf("%d more requests", n), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return sent >= target
		})
	}

	start := time.Now()
	under(300)
	for _, p := range apps {
		t.Logf("%5.1fs SIGTERM %s", time.Since(start).Seconds(), p.name)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not stop within 20s of SIGTERM", p.name)
		}
		under(100) // with the instance gone
		p.start()
		p.waitReady(20 * time.Second)
		wait.For(t, 10*time.Second, p.name+" back in the pool", func() bool {
			for _, s := range pool.Snapshot() {
				if s.URL == strings.TrimSuffix(p.ready, "/readyz") {
					return s.Serving
				}
			}
			return false
		})
		under(300)
	}
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var kinds []string
	failed := 0
	for k, n := range failures {
		kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		failed += n
	}
	sort.Strings(kinds)
	t.Logf("%.1fs, %d requests through three rolling restarts, %d failed %v", time.Since(start).Seconds(), sent, failed, kinds)
	if failed != 0 {
		t.Errorf("%d requests failed: %v", failed, kinds)
	}
}
