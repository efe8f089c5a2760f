package tier

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/wait"
)

func TestDrainFailsReadinessAndKeepsServing(t *testing.T) {
	health := &Health{}
	health.Register("db", CheckFunc(func(context.Context) error { return nil }))
	mux := http.NewServeMux()
	mux.Handle("/readyz", health.ReadinessHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "served") })
	srv := NewHTTPServer("app", &http.Server{Addr: "127.0.0.1:0", Handler: mux}, WithDrain(health, time.Hour)) // ended by the context below
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	base := "http://" + srv.Addr()

	get := func(path string) *http.Response {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := get("/"); resp.Header.Get(httpx.DrainingHeader) != "" || resp.Close {
		t.Fatalf("before draining: %s=%q, close=%v", httpx.DrainingHeader, resp.Header.Get(httpx.DrainingHeader), resp.Close)
	}

	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan error, 1)
	go func() { drained <- srv.Drain(ctx) }()
	wait.For(t, 5*time.Second, "the server to drain", srv.Draining)

	resp := get("/readyz")
	var report Report
	if err := json.NewDecoder(resp.Body).Decode(&report); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || report.Ready || len(report.Failed()) != 1 || report.Failed()[0] != "draining" {
		t.Fatalf("readyz while draining: %d %+v", resp.StatusCode, report)
	}
	resp = get("/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "served" {
		t.Fatalf("a request while draining: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get(httpx.DrainingHeader) != "1" || !resp.Close {
		t.Fatalf("a draining answer: %s=%q, close=%v; want the header and Connection: close", httpx.DrainingHeader, resp.Header.Get(httpx.DrainingHeader), resp.Close)
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned before its delay: %v", err)
	default:
	}

	cancel()
	if err := <-drained; !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain cut short = %v, want context.Canceled", err)
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("still accepting after Stop")
	}
}

// drainer is a tier whose Drain waits for every other drainer of the test
// to be draining too.
type drainer struct {
	name    string
	all     *sync.WaitGroup
	drained chan struct{}
}

func (d *drainer) Name() string                { return d.name }
func (d *drainer) Start(context.Context) error { return nil }
func (d *drainer) Stop(context.Context) error  { return nil }
func (d *drainer) Drain(ctx context.Context) error {
	d.all.Done()
	done := make(chan struct{})
	go func() { d.all.Wait(); close(done) }()
	select {
	case <-done:
		close(d.drained)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestRunDrainsEveryTierAtOnce(t *testing.T) {
	var all sync.WaitGroup
	all.Add(2)
	a := &drainer{name: "app", all: &all, drained: make(chan struct{})}
	b := &drainer{name: "web", all: &all, drained: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	runner := Runner{StopTimeout: 10 * time.Second, Started: cancel}
	if err := runner.Run(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*drainer{a, b} {
		select {
		case <-d.drained:
		default:
			t.Fatalf("%s: drain did not overlap the other's", d.name)
		}
	}
}
