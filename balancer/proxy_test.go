package balancer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

func TestAttemptTimeoutMovesOn(t *testing.T) {
	hung, good := newBackend(t), newBackend(t)
	p := newPool(t, Config{
		Endpoints: []string{hung.url, good.url},
		Policy:    PolicyFirst,
		Retry:     RetryConfig{AttemptTimeout: 100 * time.Millisecond},
	})
	// Only the first endpoint hangs: /slow waits on hung.hold, and good's
	// hold is closed.
	close(good.hold)
	start := time.Now()
	code, body, err := get(t, p.Client(), "http://upstream/slow")
	if err != nil || code != 200 || body != good.url {
		t.Fatalf("got %d %q %v", code, body, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	if st := statusOf(p, hung.url); st.Failures != 1 || st.InFlight != 0 {
		t.Fatalf("hung endpoint: %+v", st)
	}

	// Not retried when it is not safe: the error says what happened.
	req, _ := http.NewRequest(http.MethodPost, "http://upstream/slow", nil)
	_, err = p.RoundTrip(req)
	if !errors.Is(err, ErrAttemptTimeout) {
		t.Fatalf("POST err = %v", err)
	}
}

func TestReverseProxyOverPool(t *testing.T) {
	a := newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url}, Retry: RetryConfig{Attempts: 1}})
	target, _ := url.Parse("http://app")
	proxy := &httputil.ReverseProxy{
		Rewrite:      func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:    p,
		ErrorHandler: ProxyErrorHandler,
	}
	front := httptest.NewServer(proxy)
	defer front.Close()

	if code, body, err := get(t, http.DefaultClient, front.URL+"/x"); err != nil || code != 200 || body != a.url {
		t.Fatalf("proxied: %d %q %v", code, body, err)
	}
	problem := func(want int) {
		t.Helper()
		resp, err := http.Get(front.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var pr tier.Problem
		if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil || resp.StatusCode != want || pr.Status != want ||
			resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
			t.Fatalf("got %d %+v %v, want a %d problem", resp.StatusCode, pr, err, want)
		}
	}
	a.kill()
	problem(http.StatusBadGateway)
	if err := p.Drain(context.Background(), a.url); err != nil {
		t.Fatal(err)
	}
	problem(http.StatusServiceUnavailable)
	http.DefaultClient.CloseIdleConnections()
}

// An upgraded connection (WebSocket and the like) passes through a
// ReverseProxy over the pool, and stays in flight until it closes.
func TestUpgradeThroughPool(t *testing.T) {
	backendSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = rw.Flush()
		line, _ := rw.ReadString('\n')
		_, _ = rw.WriteString("echo: " + line)
		_ = rw.Flush()
	}))
	defer backendSrv.Close()
	p := newPool(t, Config{Endpoints: []string{backendSrv.URL}})
	target, _ := url.Parse("http://app")
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: p,
	})
	defer front.Close()

	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("GET /ws HTTP/1.1\r\nHost: front\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if n := statusOf(p, backendSrv.URL).InFlight; n != 1 {
		t.Fatalf("upgraded connection not in flight: %d", n)
	}
	_, _ = conn.Write([]byte("hello\n"))
	if line, err := br.ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	conn.Close()
	wait.For(t, 5*time.Second, "the upgraded connection to end", func() bool {
		return statusOf(p, backendSrv.URL).InFlight == 0
	})
}
