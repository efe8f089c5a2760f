package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

// syncBuffer is stdout read by the test while run writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// connCounter counts a server's connections by state.
type connCounter struct {
	opened, closed, requests atomic.Int64
}

func (c *connCounter) track(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		c.opened.Add(1)
	case http.StateClosed, http.StateHijacked:
		c.closed.Add(1)
	}
}

func TestHoldsEveryConnectionOpenAfterOneRequestUntilStopped(t *testing.T) {
	var count connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.requests.Add(1)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	srv.Config.ConnState = count.track
	srv.Start()
	defer srv.Close()

	const n = 150 // more than the dialers, so that each opens several
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-url", srv.URL + "/api/item", "-conns", strconv.Itoa(n)}, &out) }()

	wait.For(t, 20*time.Second, `"ready"`, func() bool { return strings.Contains(out.String(), "ready") })
	if got := out.String(); got != "ready 150\n" {
		t.Fatalf("printed %q, want %q", got, "ready 150\n")
	}
	if o, c, r := count.opened.Load(), count.closed.Load(), count.requests.Load(); o != n || c != 0 || r != n {
		t.Fatalf("server saw %d connections opened, %d closed, %d requests; want %d, 0, %d", o, c, r, n, n)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of being stopped")
	}
	wait.For(t, 10*time.Second, "every connection closed", func() bool { return count.closed.Load() == n })
}

func TestHoldEndsTheRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	var out syncBuffer
	start := time.Now()
	if err := run(context.Background(), []string{"-url", srv.URL, "-conns", "3", "-hold", "50ms"}, &out); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("returned after %v, before -hold 50ms", d)
	}
	if out.String() != "ready 3\n" {
		t.Fatalf("printed %q", out.String())
	}
}

func TestFailsOnAnErrorAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var out syncBuffer
	err := run(context.Background(), []string{"-url", srv.URL, "-conns", "100"}, &out)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("run: %v, want the 503 reported", err)
	}
	if out.String() != "" {
		t.Fatalf("printed %q after a failure", out.String())
	}
}

func TestFailsWhenTheServerClosesAfterOneAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
	}))
	defer srv.Close()
	err := run(context.Background(), []string{"-url", srv.URL, "-conns", "2"}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "keep-alive") {
		t.Fatalf("run: %v, want no keep-alive reported", err)
	}
}

func TestRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "https://127.0.0.1:1/"},
		{"-url", "127.0.0.1:1"},
		{"-url", "http://127.0.0.1:1/", "-conns", "0"},
		{"-url", "http://127.0.0.1:1/", "-hold", "-1s"},
		{"-url", "http://127.0.0.1:1/", "extra"},
	} {
		if err := run(context.Background(), args, &syncBuffer{}); err == nil {
			t.Errorf("run %q: no error", args)
		}
	}
}
