package balancer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/child"
	"go.uber.org/goleak"

	"github.com/threetier/threetier/internal/leaks"
)

func TestMain(m *testing.M) {
	if os.Getenv(benchBackendEnv) == "1" {
		serveBenchBackend()
		return
	}
	if os.Getenv(nodeEnv) != "" {
		serveTestNode()
		return
	}
	if os.Getenv(floodEnv) != "" {
		flood()
		return
	}
	goleak.VerifyTestMain(m, leaks.FastHTTP()...)
}

// backend is a real HTTP server on 127.0.0.1 that counts its requests and
// answers with status() (200 by default) and its own URL as the body.
type backend struct {
	t        testing.TB
	url      string
	srv      *http.Server
	ln       net.Listener
	hits     atomic.Int64
	status   atomic.Int64  // 0 = 200
	health   atomic.Int64  // status of /healthz; 0 = 200
	hold     chan struct{} // when non-nil, requests to /slow wait for it
	stopped  atomic.Bool
	inflight atomic.Int64
}

func newBackend(t testing.TB) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveBackend(t, ln)
}

func serveBackend(t testing.TB, ln net.Listener) *backend {
	b := &backend{t: t, ln: ln, url: "http://" + ln.Addr().String(), hold: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(b.kill)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if s := b.health.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		return
	}
	b.hits.Add(1)
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	if r.URL.Path == "/slow" {
		select {
		case <-b.hold:
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	if s := b.status.Load(); s != 0 {
		w.WriteHeader(int(s))
	}
	if r.URL.Path == "/echo" {
		_, _ = w.Write(body)
		return
	}
	_, _ = w.Write([]byte(b.url))
}

// kill stops the server at once, cutting its open connections.
func (b *backend) kill() {
	if b.stopped.CompareAndSwap(false, true) {
		_ = b.srv.Close()
	}
}

func newPool(t testing.TB, cfg Config, opts ...Option) *Pool {
	t.Helper()
	p, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stop: %v", err)
		}
		if p.ownedTr != nil {
			p.ownedTr.CloseIdleConnections()
		}
	})
	return p
}

func get(t testing.TB, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var buf [256]byte
	n, _ := readFull(resp.Body, buf[:])
	return resp.StatusCode, string(buf[:n]), nil
}

func readFull(r interface{ Read([]byte) (int, error) }, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func statusOf(p *Pool, url string) EndpointStatus {
	for _, s := range p.Snapshot() {
		if s.URL == url {
			return s
		}
	}
	return EndpointStatus{}
}

// startChild runs this test binary again as a child process, with args and
// the variables in env that make it a backend or a node instead of a test
// run, and returns the first line it prints (its address or name) and the
// process. When the test ends, the child's standard input closes (children
// that watch it exit) and it is killed by its PID.
func startChild(tb testing.TB, args []string, env ...string) (string, *os.Process) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	return child.Start(tb, cmd), cmd.Process
}
