package balancer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threetier/threetier/internal/wait"
)

func TestDrainLetsInFlightRequestsFinish(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url, b.url}, Policy: PolicyFirst})
	client := p.Client()

	var wg sync.WaitGroup
	codes := make(chan int, 5)
	for range 5 {
		wg.Go(func() {
			code, body, err := get(t, client, "http://upstream/slow")
			if err != nil || body != a.url {
				t.Errorf("in-flight request: %d %q %v", code, body, err)
			}
			codes <- code
		})
	}
	wait.For(t, 5*time.Second, "5 requests in flight on a", func() bool { return a.inflight.Load() == 5 })

	drained := make(chan error, 1)
	go func() { drained <- p.Drain(context.Background(), a.url) }()
	wait.For(t, 5*time.Second, "a draining", func() bool { return statusOf(p, a.url).State == StateDraining })

	// New requests go elsewhere while a finishes.
	if _, body, err := get(t, client, "http://upstream/"); err != nil || body != b.url {
		t.Fatalf("new request during drain: %q %v", body, err)
	}
	select {
	case err := <-drained:
		t.Fatalf("drain returned with requests in flight: %v", err)
	default:
	}
	close(a.hold)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("in-flight request ended with %d", c)
		}
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if err := p.Remove(context.Background(), a.url); err != nil {
		t.Fatal(err)
	}
	if got := endpointURLs(p); len(got) != 1 || got[0] != b.url {
		t.Fatalf("after remove: %v", got)
	}
}

func TestDrainGivesUpWithItsContext(t *testing.T) {
	a := newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = get(t, p.Client(), "http://upstream/slow")
	}()
	wait.For(t, 5*time.Second, "a request in flight", func() bool { return a.inflight.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Remove(ctx, a.url); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("remove = %v", err)
	}
	if len(p.Snapshot()) != 0 {
		t.Fatal("endpoint not removed after the deadline")
	}
	close(a.hold)
	<-done
}

func TestActiveHealthChecks(t *testing.T) {
	a, b, dead := newBackend(t), newBackend(t), newBackend(t)
	dead.kill()
	p := newPool(t, Config{
		Endpoints: []string{a.url, b.url, dead.url},
		// A check times out after Interval: shorter would flip healthy
		// endpoints down on a loaded machine.
		Health: HealthConfig{Path: "/healthz", Interval: 200 * time.Millisecond, Rise: 2, Fall: 2},
	})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first round decides: the dead one is down before any traffic.
	if st := statusOf(p, dead.url); st.State != StateDown || st.LastCheckError == "" {
		t.Fatalf("dead endpoint after Start: %+v", st)
	}
	b.health.Store(http.StatusInternalServerError)
	wait.For(t, 5*time.Second, "b down", func() bool { return statusOf(p, b.url).State == StateDown })
	if st := statusOf(p, b.url); !strings.Contains(st.LastCheckError, "500") {
		t.Fatalf("last check error = %q", st.LastCheckError)
	}
	for range 10 {
		if _, body, err := get(t, p.Client(), "http://upstream/"); err != nil || body != a.url {
			t.Fatalf("with b down: %q %v", body, err)
		}
	}
	b.health.Store(0)
	wait.For(t, 5*time.Second, "b up", func() bool { return statusOf(p, b.url).State == StateUp })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBackupsAndPanic(t *testing.T) {
	a, b, c, d, backup := newBackend(t), newBackend(t), newBackend(t), newBackend(t), newBackend(t)
	p := newPool(t, Config{
		Endpoints:      []string{a.url, b.url, c.url, d.url},
		Backups:        []string{backup.url},
		PanicThreshold: 50,
		// With Fall 1 one slow check takes an endpoint out, and a check
		// times out after Interval: not shorter, on a loaded machine.
		Health: HealthConfig{Path: "/healthz", Interval: 200 * time.Millisecond, Rise: 1, Fall: 1},
	})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	serving := func() (n int) {
		for _, s := range p.Snapshot() {
			if s.Serving {
				n++
			}
		}
		return n
	}
	if n := serving(); n != 4 || statusOf(p, backup.url).Serving {
		t.Fatalf("backup serving while primaries are up (%d serving)", n)
	}
	// 3 of 4 primaries down: 25% healthy is under the 50% threshold, so the
	// load spreads over all four rather than crush the survivor.
	for _, be := range []*backend{b, c, d} {
		be.health.Store(http.StatusServiceUnavailable)
	}
	wait.For(t, 5*time.Second, "panic routing", func() bool { return p.table.Load().panic && serving() == 4 })
	if err := p.Check(context.Background()); err != nil {
		t.Fatalf("one healthy endpoint, yet Check = %v", err)
	}
	// No primary healthy: the backup takes over.
	a.health.Store(http.StatusServiceUnavailable)
	wait.For(t, 5*time.Second, "the backup alone", func() bool {
		return serving() == 1 && statusOf(p, backup.url).Serving
	})
	if _, body, err := get(t, p.Client(), "http://upstream/"); err != nil || body != backup.url {
		t.Fatalf("backup not used: %q %v", body, err)
	}
	// Backup down too: Check fails, and requests still try every endpoint.
	backup.health.Store(http.StatusServiceUnavailable)
	wait.For(t, 5*time.Second, "not ready", func() bool { return p.Check(context.Background()) != nil })
	if code, _, err := get(t, p.Client(), "http://upstream/"); err != nil || code != 200 {
		t.Fatalf("panic over all: %d %v", code, err)
	}
	a.health.Store(0)
	wait.For(t, 5*time.Second, "a back", func() bool { return p.Check(context.Background()) == nil })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMetrics(t *testing.T) {
	a := newBackend(t)
	reg := prometheus.NewRegistry()
	p := newPool(t, Config{Name: "orders", Endpoints: []string{a.url}}, WithRegistry(reg))
	for range 3 {
		_, _, _ = get(t, p.Client(), "http://upstream/")
	}
	want := `
# HELP threetier_balancer_endpoint_requests_total Attempts sent to the endpoint.
# TYPE threetier_balancer_endpoint_requests_total counter
threetier_balancer_endpoint_requests_total{endpoint="` + a.url + `",pool="orders"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "threetier_balancer_endpoint_requests_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 10 {
		t.Fatalf("%d metrics, %v", n, err)
	}
	// A second pool with another name shares the registry.
	if _, err := New(Config{Name: "users", Endpoints: []string{a.url}}, WithRegistry(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Name: "users", Endpoints: []string{a.url}}, WithRegistry(reg)); err == nil {
		t.Fatal("two pools with the same name in one registry")
	}
}

func TestStartStop(t *testing.T) {
	a := newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url}, Health: HealthConfig{Path: "/healthz", Interval: time.Hour}})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err == nil {
		t.Fatal("started twice")
	}
	// Endpoints added while running are checked.
	b := newBackend(t)
	b.health.Store(http.StatusServiceUnavailable)
	if err := p.Add(Endpoint{URL: b.url}); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the added endpoint checked", func() bool { return statusOf(p, b.url).State == StateDown })
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal("second stop:", err)
	}
	// Still balancing after Stop.
	if code, _, err := get(t, p.Client(), "http://upstream/"); err != nil || code != 200 {
		t.Fatalf("after stop: %d %v", code, err)
	}
	// And it starts again.
	b.health.Store(0)
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(p, b.url); st.State != StateUp {
		t.Fatalf("b after restart: %+v", st)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailsWithoutAnyEndpoint(t *testing.T) {
	p := newPool(t, Config{}, WithDiscovery(failingDiscovery{}))
	if err := p.Start(context.Background()); err == nil {
		t.Fatal("started with no endpoint and failing discovery")
	}
}

type failingDiscovery struct{}

func (failingDiscovery) Discover(context.Context) ([]Endpoint, error) {
	return nil, errors.New("registry unreachable")
}

func TestHealthExpectStatus(t *testing.T) {
	a := newBackend(t)
	ctx := context.Background()
	p := newPool(t, Config{Endpoints: []string{a.url}, Health: HealthConfig{Path: "/healthz", ExpectStatus: http.StatusNoContent}})
	if err := p.probe(ctx, p.eps[0]); err == nil || !strings.Contains(err.Error(), "status 200") {
		t.Fatalf("200 passed a check expecting 204: %v", err)
	}
	a.health.Store(http.StatusNoContent)
	if err := p.probe(ctx, p.eps[0]); err != nil {
		t.Fatal(err)
	}
	p2 := newPool(t, Config{Endpoints: []string{a.url}, Health: HealthConfig{Path: "/healthz"}})
	a.health.Store(http.StatusFound)
	if err := p2.probe(ctx, p2.eps[0]); err != nil {
		t.Fatalf("3xx is healthy by default: %v", err)
	}
	a.health.Store(http.StatusTooManyRequests)
	if err := p2.probe(ctx, p2.eps[0]); err == nil {
		t.Fatal("429 passed")
	}
}

func TestStatusHandler(t *testing.T) {
	a := newBackend(t)
	p := newPool(t, Config{Name: "app", Endpoints: []string{a.url}})
	_, _, _ = get(t, p.Client(), "http://upstream/")
	srv := httptest.NewServer(p.StatusHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Pool != "app" || !st.Ready || st.Panic || len(st.Endpoints) != 1 || st.Endpoints[0].Requests != 1 || st.Endpoints[0].State != StateUp {
		t.Fatalf("status = %+v", st)
	}
	resp2, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp2.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}
