package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

// upstream is one instance of another service, on a real loopback socket.
type upstream struct {
	*httptest.Server
	mode     atomic.Value // "ok", "fail", "hang"
	requests atomic.Int64
	lastID   atomic.Value
	lastHost atomic.Value
}

func newUpstream(t *testing.T, name string) *upstream {
	u := &upstream{}
	u.mode.Store("ok")
	u.lastID.Store("")
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		u.lastID.Store(r.Header.Get(tier.HeaderRequestID))
		u.lastHost.Store(r.Host)
		switch u.mode.Load() {
		case "fail":
			tier.WriteProblem(w, tier.NewProblem(http.StatusServiceUnavailable, "down for maintenance"))
		case "hang":
			<-r.Context().Done()
		case "missing":
			tier.WriteProblem(w, tier.NewProblem(http.StatusNotFound, "no such user"))
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"served_by":%q,"path":%q}`, name, r.URL.Path)
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func newTestClient(t *testing.T, cfg GuardConfig, ups ...*upstream) *Client {
	t.Helper()
	var eps []string
	for _, u := range ups {
		eps = append(eps, u.URL)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	pool, err := balancer.New(balancer.Config{Name: "users", Endpoints: eps}, balancer.WithTransport(tr), balancer.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	guard, err := NewGuards().Add("users", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return NewClient(pool, guard)
}

type servedBy struct {
	ServedBy string `json:"served_by"`
	Path     string `json:"path"`
}

func TestClientBalancesAndCarriesRequestID(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	c := newTestClient(t, GuardConfig{}, a, b)
	ctx := httpx.WithRequestID(context.Background(), "rid-7")
	seen := map[string]int{}
	for range 4 {
		var out servedBy
		if err := c.JSON(ctx, http.MethodGet, "/users/1", nil, &out); err != nil {
			t.Fatal(err)
		}
		if out.Path != "/users/1" {
			t.Fatalf("upstream saw path %q", out.Path)
		}
		seen[out.ServedBy]++
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Fatalf("served %v: want both instances used", seen)
	}
	if a.lastID.Load() != "rid-7" || b.lastID.Load() != "rid-7" {
		t.Fatalf("request IDs %q, %q: want rid-7 forwarded", a.lastID.Load(), b.lastID.Load())
	}

	// A 4xx is the service's answer, not its failure.
	a.mode.Store("missing")
	b.mode.Store("missing")
	for range 10 {
		err := c.JSON(ctx, http.MethodGet, "/users/2", nil, nil)
		var se *StatusError
		if !errors.As(err, &se) || se.Status != http.StatusNotFound || se.Problem == nil || se.Problem.Detail != "no such user" {
			t.Fatalf("err = %v, want a StatusError 404 with the service's problem", err)
		}
	}
	if c.Guard().State() != gobreaker.StateClosed || c.Guard().Counts().TotalFailures != 0 {
		t.Fatal("4xx answers counted against the service")
	}
}

func TestClientBreakerOpensOnFailingService(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.mode.Store("fail")
	b.mode.Store("fail")
	c := newTestClient(t, GuardConfig{ConsecutiveFailures: 3, OpenFor: time.Minute}, a, b)
	ctx := context.Background()
	for i := range 3 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://users/orders", strings.NewReader(`{}`))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("call %d: %v; a 5xx answer is still an answer", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "maintenance") {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if c.Guard().State() != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 3 failed answers, want open", c.Guard().State())
	}
	sent := a.requests.Load() + b.requests.Load()
	start := time.Now()
	err := c.JSON(ctx, http.MethodGet, "/users/1", nil, nil)
	took := time.Since(start)
	var ge *GuardError
	if !errors.As(err, &ge) || !errors.Is(err, ErrBreakerOpen) || ge.RetryAfter <= 0 {
		t.Fatalf("err = %v, want an open breaker with Retry-After", err)
	}
	if a.requests.Load()+b.requests.Load() != sent {
		t.Fatal("an open breaker let a request reach the service")
	}
	t.Logf("refused in %s without touching the network", took)
}

func TestClientTimeoutCoversTheBody(t *testing.T) {
	a := newUpstream(t, "a")
	c := newTestClient(t, GuardConfig{Timeout: 5 * time.Second}, a)
	// The answer is read before the call's context ends, so the caller
	// can read it afterwards.
	req, _ := http.NewRequest(http.MethodGet, "http://users/users/3", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(body), `"served_by":"a"`) {
		t.Fatalf("body %q, %v", body, err)
	}

	a.mode.Store("hang")
	c = newTestClient(t, GuardConfig{Timeout: 50 * time.Millisecond}, a)
	err = c.JSON(context.Background(), http.MethodGet, "/users/3", nil, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

// The whole path: a handler calls a failing service through a Client; the
// tier answers 503 with Retry-After once the breaker opens.
func TestClientErrorsReachTheEdge(t *testing.T) {
	a := newUpstream(t, "a")
	a.mode.Store("fail")
	c := newTestClient(t, GuardConfig{ConsecutiveFailures: 2, OpenFor: 30 * time.Second}, a)
	s := newTestServer(t, Config{})
	s.Echo().GET("/profile", func(ec echo.Context) error {
		var out servedBy
		if err := c.JSON(ec.Request().Context(), http.MethodGet, "/users/1", nil, &out); err != nil {
			return err
		}
		return ec.JSON(http.StatusOK, out)
	})
	url := startServer(t, s)
	hc := testClient(t)
	for range 2 {
		checkProblem(t, do(t, hc, "GET", url+"/profile", "", nil), http.StatusBadGateway, "/profile")
	}
	x := do(t, hc, "GET", url+"/profile", "", nil)
	checkProblem(t, x, http.StatusServiceUnavailable, "/profile")
	if ra := x.header.Get("Retry-After"); ra != "30" && ra != "29" {
		t.Fatalf("Retry-After %q, want the breaker's remaining open time (30s)", ra)
	}
}

// closeCounter is a request body that counts its closes.
type closeCounter struct {
	io.Reader
	closed atomic.Int32
}

func (b *closeCounter) Close() error { b.closed.Add(1); return nil }

func TestClientClosesTheBodyOfARefusedRequest(t *testing.T) {
	c := newTestClient(t, GuardConfig{ConsecutiveFailures: 1, OpenFor: time.Minute}, newUpstream(t, "a"))
	var calls atomic.Int64
	_, _ = Do(context.Background(), c.Guard(), failing(&calls)) // opens the breaker
	body := &closeCounter{Reader: strings.NewReader(`{"name":"x"}`)}
	req, err := http.NewRequest(http.MethodPost, "http://users/orders", body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(req); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("err = %v, want ErrBreakerOpen", err)
	}
	if n := body.closed.Load(); n != 1 {
		t.Fatalf("request body closed %d times by a refused call, want 1 (as http.Client.Do does)", n)
	}
}

func TestClientJSONWhateverThePoolName(t *testing.T) {
	u := newUpstream(t, "a")
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	// A pool name is free text for logs and metrics; it must not end up
	// in the request's URL.
	pool, err := balancer.New(balancer.Config{Name: "users api/v2", Endpoints: []string{u.URL}},
		balancer.WithTransport(tr), balancer.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	guard, err := NewGuards().Add("users", GuardConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(pool, guard)
	var out servedBy
	if err := c.JSON(context.Background(), http.MethodGet, "/orders?n=1", nil, &out); err != nil || out.Path != "/orders" {
		t.Fatalf("upstream saw path %q (%v), want /orders", out.Path, err)
	}
	if host := u.lastHost.Load(); host != strings.TrimPrefix(u.URL, "http://") {
		t.Fatalf("upstream saw Host %q, want its own address", host)
	}
	if err := c.JSON(context.Background(), http.MethodGet, "orders", nil, &out); err == nil {
		t.Fatal("a path without its leading / was sent")
	}
}
