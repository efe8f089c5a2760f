// Package balancertest has what the tests of balancer's sibling packages
// (the cluster, the stats page) share: a real backend that counts its
// requests, and pools that stop when the test ends.
package balancertest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/balancer"
)

// Backend is a real HTTP server on 127.0.0.1 that counts its requests and
// answers with Status (200 when 0) and its own URL as the body; /healthz
// answers Health (200 when 0), /slow waits for Hold to close, /echo sends
// the request body back.
type Backend struct {
	URL      string
	Hits     atomic.Int64 // requests other than /healthz
	Status   atomic.Int64
	Health   atomic.Int64
	InFlight atomic.Int64 // requests being answered
	Hold     chan struct{}

	srv     *http.Server
	stopped atomic.Bool
}

// NewBackend starts a Backend on a free port; it is killed when the test
// ends.
func NewBackend(t testing.TB) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{URL: "http://" + ln.Addr().String(), Hold: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(b.Kill)
	return b
}

func (b *Backend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if s := b.Health.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		return
	}
	b.Hits.Add(1)
	b.InFlight.Add(1)
	defer b.InFlight.Add(-1)
	if r.URL.Path == "/slow" {
		select {
		case <-b.Hold:
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	if s := b.Status.Load(); s != 0 {
		w.WriteHeader(int(s))
	}
	if r.URL.Path == "/echo" {
		_, _ = w.Write(body)
		return
	}
	_, _ = w.Write([]byte(b.URL))
}

// Kill stops the server at once, cutting its open connections.
func (b *Backend) Kill() {
	if b.stopped.CompareAndSwap(false, true) {
		_ = b.srv.Close()
	}
}

// NewPool builds a pool that is stopped when the test ends.
func NewPool(t testing.TB, cfg balancer.Config, opts ...balancer.Option) *balancer.Pool {
	t.Helper()
	p, err := balancer.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stop: %v", err)
		}
	})
	return p
}

// Get sends GET url with c and returns the status and up to 256 bytes of
// the body.
func Get(t testing.TB, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	return resp.StatusCode, string(body), nil
}

// StatusOf returns the state of p's endpoint url; the zero value when p
// has none.
func StatusOf(p *balancer.Pool, url string) balancer.EndpointStatus {
	for _, s := range p.Snapshot() {
		if s.URL == url {
			return s
		}
	}
	return balancer.EndpointStatus{}
}

// ClientFrom returns a client whose connections come from ip, a loopback
// address other than 127.0.0.1 to be another client of a rate limit.
func ClientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}
