package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/tmpfs"
	"github.com/threetier/threetier/internal/wait"
)

// On SQLite, a full disk fails the orders, with 503 and Retry-After, and
// nothing else: the catalogue is still read from the database, fresh and
// fast, beside them.
func TestFullDiskFailsOnlyTheWrites(t *testing.T) {
	dir := tmpfs.Mount(t, "2m")
	t.Setenv("THREETIER_LOG_LEVEL", "error")
	path := filepath.Join(dir, "shop.db")
	s := startRun(t, "-role", "app", "-listen", "127.0.0.1:0", "-db", path, "-name", "app-1")
	base := "http://" + s.l.Apps[0]
	db, err := data.Open(context.Background(), data.Config{Path: path, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Gorm().Exec("UPDATE products SET stock = 1000000").Error; err != nil {
		t.Fatal(err)
	}

	// What space is left goes to a file of its own; the next orders have
	// nowhere to go.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	if err := filler.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	n := 0
	wait.For(t, 20*time.Second, "an order refused for the full disk", func() bool {
		n++
		a := do(t, s.client, "POST", base+"/api/orders", orderBody([2]int{1, 1}), "Idempotency-Key", fmt.Sprintf("full-%d", n))
		return a.status == http.StatusServiceUnavailable
	})

	// A client that sends its order again and again is refused each time,
	// and opens no breaker over the reads.
	for range 10 {
		n++
		if a := do(t, s.client, "POST", base+"/api/orders", orderBody([2]int{1, 1}), "Idempotency-Key", fmt.Sprintf("full-%d", n)); a.status != http.StatusServiceUnavailable {
			t.Fatalf("an order on a full disk: %d %s", a.status, a.body)
		}
	}

	// Orders go on failing beside the readers.
	const readers = 3
	reads := &clientLoad{name: "catalogue reads", client: s.client}
	orders := &clientLoad{name: "orders on a full disk", client: s.client}
	over := make(chan struct{})
	time.AfterFunc(time.Second, func() { close(over) })
	var wg sync.WaitGroup
	wg.Go(func() {
		paced(10*time.Millisecond, over, func(i int) {
			orders.request("POST", base+"/api/orders", orderBody([2]int{1 + i%3, 1}), "Idempotency-Key", fmt.Sprintf("full-%d", n+1+i))
		})
	})
	for r := range readers {
		wg.Go(func() {
			paced(5*time.Millisecond, over, func(i int) {
				url := base + "/api/products"
				if i%2 == 1 {
					url = fmt.Sprintf("%s/api/products/%d", base, 1+(r+i)%3)
				}
				reads.request("GET", url, "")
			})
		})
	}
	wg.Wait()
	t.Log(reads.summary())
	t.Log(orders.summary())
	if orders.sample != "" {
		t.Logf("a failed order: %s", strings.TrimSpace(orders.sample))
	}

	// A full disk is no failure of the database: the breaker in front of
	// it, which the reads go through too, stayed closed.
	breakerStayedClosed(t, s)
	if ok := reads.statuses[http.StatusOK]; ok != len(reads.took) || reads.stale != 0 {
		t.Errorf("catalogue reads: %v, %d stale; want every one 200 and fresh", reads.statuses, reads.stale)
	}
	if orders.statuses[http.StatusServiceUnavailable] == 0 || orders.statuses[http.StatusCreated] != 0 {
		t.Errorf("orders on a full disk: %v; want 503s and no order placed", orders.statuses)
	}
	if orders.noRetry != 0 {
		t.Errorf("%d refused orders came without Retry-After", orders.noRetry)
	}
	if p := reads.quantile(0.99); p > 50*time.Millisecond && !raceEnabled {
		t.Errorf("catalogue reads while the disk is full: p99 %s, want under 50ms", p.Round(time.Millisecond))
	}
}
