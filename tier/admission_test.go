package tier_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

func TestConnAdmissionRefusesAtOnceAndReleasesOnClose(t *testing.T) {
	var mu sync.Mutex
	open := map[netip.Addr]int{}
	var seen netip.Addr
	admit := func(remote netip.Addr) (func(), bool) {
		mu.Lock()
		defer mu.Unlock()
		seen = remote
		if open[remote] >= 1 {
			return nil, false
		}
		open[remote]++
		return func() { mu.Lock(); open[remote]--; mu.Unlock() }, true
	}
	srv := tier.NewHTTPServer("web", &http.Server{
		Addr:    "127.0.0.1:0",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }),
	}, tier.WithConnAdmission(admit))
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })

	get := func(c net.Conn) (string, error) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	first, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if body, err := get(first); body != "ok" {
		t.Fatalf("first connection: %q, %v", body, err)
	}
	// Refused: reset as it connects, or at its first read.
	if second, err := net.Dial("tcp", srv.Addr()); err == nil {
		if body, err := get(second); err == nil {
			t.Fatalf("second connection over the cap served: %q", body)
		}
		second.Close()
	}
	mu.Lock()
	if seen != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("admission asked about %v", seen)
	}
	mu.Unlock()

	first.Close()
	wait.For(t, 5*time.Second, "the first connection's release", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return open[netip.MustParseAddr("127.0.0.1")] == 0
	})
	third, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if body, err := get(third); body != "ok" {
		t.Fatalf("after a release: %q, %v", body, err)
	}
}
