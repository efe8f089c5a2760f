package balancer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/balancer/internal/h1"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

func TestRoundRobinSpreadsOverRealBackends(t *testing.T) {
	a, b, c := newBackend(t), newBackend(t), newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url, b.url, c.url}})
	client := p.Client()
	seen := map[string]int{}
	for range 30 {
		code, body, err := get(t, client, "http://upstream/x")
		if err != nil || code != 200 {
			t.Fatalf("get: %d %v", code, err)
		}
		seen[body]++
	}
	for _, be := range []*backend{a, b, c} {
		if seen[be.url] != 10 {
			t.Fatalf("round robin uneven: %v", seen)
		}
	}
}

func TestWeightsAreSmooth(t *testing.T) {
	sched := buildSchedule([]int32{50, 10, 10})
	// Weights 5:1:1: endpoint 0 never gets more than 3 turns in a row, even
	// across the end of the round.
	want := "0 0 0 1 0 0 2"
	var got []string
	for _, i := range sched {
		got = append(got, string(rune('0'+i)))
	}
	if strings.Join(got, " ") != want {
		t.Fatalf("schedule = %v, want %s", got, want)
	}
	if buildSchedule([]int32{10, 10, 10}) != nil {
		t.Fatal("equal weights need no schedule")
	}
}

func TestConfigErrorsAreClear(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Endpoints: []string{"127.0.0.1:8080"}}, "Endpoints[0]"},
		{Config{Endpoints: []string{"http://h:1/api"}}, "must not have a path"},
		{Config{Endpoints: []string{"ftp://h:1"}}, "scheme must be http or https"},
		{Config{Endpoints: []string{"http://h:1"}, Policy: "fastest"}, "unknown policy"},
		{Config{Endpoints: []string{"http://h:1"}, Health: HealthConfig{Interval: -time.Second}}, "Health.Interval"},
		{Config{Endpoints: []string{"http://h:1"}, Policy: PolicyHash, HashKey: "header:"}, "header name missing"},
		{Config{Endpoints: []string{"http://h:1", "http://H:1"}}, "listed twice"},
		{Config{}, "no endpoints and no discovery"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want a ConfigError about %q", tt.cfg, err, tt.want)
		}
	}
}

func TestNoEndpointAndUnavailable(t *testing.T) {
	a := newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url}})
	if err := p.Check(context.Background()); err != nil {
		t.Fatalf("check: %v", err)
	}
	if err := p.Drain(context.Background(), a.url); err != nil {
		t.Fatal(err)
	}
	_, err := p.Client().Get("http://upstream/")
	if !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("err = %v, want ErrNoEndpoint", err)
	}
	if err := p.Check(context.Background()); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("check = %v", err)
	}
	rec := httptest.NewRecorder()
	WriteUnavailable(rec, httptest.NewRequest("GET", "/orders", nil), err)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" || rec.Header().Get("Content-Type") != tier.ContentTypeProblem {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
	if err := p.Undrain(a.url); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get(t, p.Client(), "http://upstream/"); err != nil || code != 200 {
		t.Fatalf("after undrain: %d %v", code, err)
	}
	if err := p.SetWeight("http://nowhere:1", 2); !errors.Is(err, ErrUnknownEndpoint) {
		t.Fatalf("SetWeight unknown = %v", err)
	}
}

func TestRequestIDForwarded(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get(tier.HeaderRequestID)
	}))
	defer srv.Close()
	p := newPool(t, Config{Endpoints: []string{srv.URL}})
	req, _ := http.NewRequestWithContext(httpx.WithRequestID(context.Background(), "abc123"), "GET", "http://up/", nil)
	resp, err := p.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != "abc123" {
		t.Fatalf("request id = %q", got)
	}
	if req.Header.Get(tier.HeaderRequestID) != "" {
		t.Fatal("the caller's request was modified")
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	// Start from the zero Config: its zero values are the defaults.
	var cfg Config
	err := tier.LoadEnvFrom([]string{
		"THREETIER_BALANCER_ENDPOINTS=http://10.0.0.1:80,http://10.0.0.2:80",
		"THREETIER_BALANCER_POLICY=least_request",
		"THREETIER_BALANCER_HEALTH_PATH=/readyz",
		"THREETIER_BALANCER_HEALTH_INTERVAL=2s",
		"THREETIER_BALANCER_RETRY_ON=500,503",
		"THREETIER_BALANCER_OUTLIER_MAX_EJECTION_PERCENT=30",
	}, EnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Endpoints) != 2 || cfg.Policy != PolicyLeastRequest || cfg.Health.Path != "/readyz" ||
		cfg.Health.Interval != 2*time.Second || len(cfg.Retry.On) != 2 || cfg.Outlier.MaxEjectionPercent != 30 {
		t.Fatalf("cfg = %+v", cfg)
	}
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	cfg = Config{}
	err = tier.LoadEnvFrom([]string{"THREETIER_BALANCER_POLICY=fastest"}, EnvPrefix, &cfg)
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Policy" || ce.Var != "THREETIER_BALANCER_POLICY" {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigErrorsNameTheVariableUnderTheLoadedPrefix(t *testing.T) {
	err := tier.LoadEnvFrom([]string{
		"THREETIER_BALANCER_WEB_ENDPOINTS=http://127.0.0.1:1,ftp://x",
		"THREETIER_BALANCER_WEB_RETRY_BACKOFF=-1s",
		"THREETIER_BALANCER_WEB_HEALTH_PATH=healthz",
		"THREETIER_BALANCER_WEB_RETRY_ATTEMPTS=-1", // no retries: not an error
	}, EnvPrefix+"WEB_", &Config{})
	for _, want := range []string{
		`THREETIER_BALANCER_WEB_ENDPOINTS="ftp://x"`,
		`THREETIER_BALANCER_WEB_RETRY_BACKOFF="-1s"`,
		`THREETIER_BALANCER_WEB_HEALTH_PATH="healthz"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "ATTEMPTS") {
		t.Errorf("negative Retry.Attempts rejected: %v", err)
	}
	if got := (Config{Retry: RetryConfig{Attempts: -1}}).withDefaults().Retry.Attempts; got != 1 {
		t.Errorf("negative Retry.Attempts became %d, want 1 (no retries)", got)
	}
}

// TestPoolUsesTheLeanTransport: a pool that makes its own transport sends
// through the lean HTTP/1.1 path, on one kept connection, and Stop closes
// its idle connections.
func TestPoolUsesTheLeanTransport(t *testing.T) {
	var opened, ended atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			ended.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := newPool(t, Config{Endpoints: []string{srv.URL}})
	if _, ok := p.transport.(*h1.Transport); !ok {
		t.Fatalf("pool transport %T", p.transport)
	}
	for range 10 {
		if _, body, err := get(t, p.Client(), "http://app/"); err != nil || body != "ok" {
			t.Fatalf("%q %v", body, err)
		}
	}
	if n := opened.Load(); n != 1 {
		t.Fatalf("%d connections for 10 requests", n)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "Stop to close the idle connection", func() bool { return ended.Load() == 1 })
}

// TestParsePolicy: every policy parses to itself; an unknown name is a
// ConfigError that lists the known ones.
func TestParsePolicy(t *testing.T) {
	for _, p := range policies {
		if got, err := ParsePolicy(string(p)); got != p || err != nil {
			t.Errorf("ParsePolicy(%q) = %q, %v", p, got, err)
		}
	}
	_, err := ParsePolicy("fastest")
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Policy" || ce.Value != "fastest" || !strings.Contains(ce.Allowed, "round_robin") || !strings.Contains(ce.Allowed, "random") {
		t.Fatalf("ParsePolicy(fastest): %v", err)
	}
}
