package stats

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/internal/balancertest"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// statsServer is a started Stats on 127.0.0.1 and a client of its own,
// whose connections the test closes.
type statsServer struct {
	t      *testing.T
	stats  *Stats
	base   string
	client *http.Client
}

func newStatsServer(t *testing.T, cfg Config, pools []*balancer.Pool, opts ...Option) *statsServer {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg, pools, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stats stop: %v", err)
		}
	})
	return &statsServer{t: t, stats: s, base: "http://" + s.Addr(), client: &http.Client{Transport: tr}}
}

// do sends a request and returns the response with its body read.
func (ss *statsServer) do(method, path, token, contentType, body string) (*http.Response, []byte) {
	ss.t.Helper()
	req, err := http.NewRequest(method, ss.base+path, strings.NewReader(body))
	if err != nil {
		ss.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ss.client.Do(req)
	if err != nil {
		ss.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ss.t.Fatal(err)
	}
	return resp, b
}

// action posts a runtime action with a JSON body.
func (ss *statsServer) action(token, pool, action, body string) (*http.Response, []byte) {
	ss.t.Helper()
	return ss.do(http.MethodPost, "/api/pools/"+pool+"/endpoints/"+action, token, "application/json", body)
}

func (ss *statsServer) report() Report {
	ss.t.Helper()
	resp, body := ss.do(http.MethodGet, "/api/status", "", "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		ss.t.Fatalf("GET /api/status: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	var r Report
	if err := json.Unmarshal(body, &r); err != nil {
		ss.t.Fatal(err)
	}
	return r
}

func (ss *statsServer) page() *html.Node {
	ss.t.Helper()
	resp, body := ss.do(http.MethodGet, "/", "", "", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		ss.t.Fatalf("GET /: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	doc, err := html.Parse(bytes.NewReader(body))
	if err != nil {
		ss.t.Fatal(err)
	}
	return doc
}

// problemOf checks that a response is a problem+json with the given status
// and returns it.
func problemOf(t *testing.T, resp *http.Response, body []byte, status int) tier.Problem {
	t.Helper()
	var p tier.Problem
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
		t.Fatalf("%s %s: got %d %s %s, want %d problem", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), body, status)
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Status != status || p.Detail == "" {
		t.Fatalf("problem %s: %+v %v", body, p, err)
	}
	return p
}

// status is the pool's Status as the report has it, without the history.
func (p PoolReport) status() balancer.Status {
	st := p.Status
	st.Endpoints = nil
	for _, e := range p.Endpoints {
		st.Endpoints = append(st.Endpoints, e.EndpointStatus)
	}
	return st
}

// comparableStatus reduces a pool's Status to what does not move on its own
// between two reads: the latency and success averages decay with time, so
// the first is checked for presence only and the second not at all; a JSON
// round trip drops monotonic clocks.
func comparableStatus(t *testing.T, st balancer.Status) balancer.Status {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out balancer.Status
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	for i := range out.Endpoints {
		e := &out.Endpoints[i]
		if e.EWMA > 0 {
			e.EWMA = 1
		}
		e.SuccessRatio = 0
	}
	return out
}

func TestStatsJSONMatchesPoolStatus(t *testing.T) {
	a, b, c := balancertest.NewBackend(t), balancertest.NewBackend(t), balancertest.NewBackend(t)
	c.Health.Store(http.StatusServiceUnavailable)
	b.Status.Store(http.StatusInternalServerError)
	web := balancertest.NewPool(t, balancer.Config{Name: "web", Endpoints: []string{a.URL, b.URL}, Retry: balancer.RetryConfig{Attempts: 1}})
	app := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL}, Backups: []string{c.URL},
		Health: balancer.HealthConfig{Path: "/healthz", Interval: time.Hour}})
	if err := app.Start(context.Background()); err != nil { // one check of each endpoint, then none for an hour
		t.Fatal(err)
	}
	for range 6 {
		_, _, _ = balancertest.Get(t, web.Client(), "http://upstream/")
		_, _, _ = balancertest.Get(t, app.Client(), "http://upstream/")
	}
	ss := newStatsServer(t, Config{Name: "lb-1"}, []*balancer.Pool{web, app})

	r := ss.report()
	if r.Node != "lb-1" || r.Actions || r.Generated.IsZero() || len(r.Members) != 0 || len(r.PeerViews) != 0 {
		t.Fatalf("report header: %+v", r)
	}
	if len(r.Pools) != 2 {
		t.Fatalf("%d pools", len(r.Pools))
	}
	for i, p := range []*balancer.Pool{web, app} {
		got, want := comparableStatus(t, r.Pools[i].status()), comparableStatus(t, p.Status())
		if !reflect.DeepEqual(got, want) {
			t.Errorf("pool %s:\n json %+v\n pool %+v", p.Name(), got, want)
		}
	}
	// The figures are the ones the traffic made.
	if e := r.Pools[0].Endpoints[1]; e.Requests != 3 || e.Failures != 3 || e.EWMA <= 0 {
		t.Errorf("failing endpoint: %+v", e)
	}
	if e := r.Pools[1].Endpoints[1]; !e.Backup || e.LastCheck.IsZero() || e.LastCheckOK || !strings.Contains(e.LastCheckError, "503") {
		t.Errorf("backup with a failing check: %+v", e)
	}
}

func TestStatsActionsOffWithoutToken(t *testing.T) {
	a := balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL}})
	ss := newStatsServer(t, Config{}, []*balancer.Pool{p})
	body := fmt.Sprintf(`{"url": %q, "weight": 7}`, a.URL)
	for _, action := range []string{"drain", "undrain", "weight", "add", "remove"} {
		for _, token := range []string{"", "guess"} {
			resp, b := ss.action(token, "app", action, body)
			pr := problemOf(t, resp, b, http.StatusForbidden)
			if !strings.Contains(pr.Detail, "off") {
				t.Errorf("%s: %q", action, pr.Detail)
			}
		}
	}
	// Not even an unknown pool is told apart.
	resp, b := ss.action("", "nope", "drain", body)
	problemOf(t, resp, b, http.StatusForbidden)
	if st := balancertest.StatusOf(p, a.URL); st.State != balancer.StateUp || st.Weight != 1 || len(p.Snapshot()) != 1 {
		t.Fatalf("a refused action changed the pool: %+v", st)
	}
}

func TestStatsActionsNeedTheToken(t *testing.T) {
	a := balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL}})
	var logs syncbuf.Buffer
	ss := newStatsServer(t, Config{Token: "s3cret-token"}, []*balancer.Pool{p},
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	body := fmt.Sprintf(`{"url": %q, "weight": 7}`, a.URL)
	for _, action := range []string{"drain", "weight", "remove"} {
		for _, header := range []string{"", "Bearer wrong", "Bearer s3cret-toke", "Basic czNjcmV0LXRva2Vu", "s3cret-token"} {
			req, _ := http.NewRequest(http.MethodPost, ss.base+"/api/pools/app/endpoints/"+action, strings.NewReader(body))
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			resp, err := ss.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			problemOf(t, resp, b, http.StatusUnauthorized)
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	if st := balancertest.StatusOf(p, a.URL); st.State != balancer.StateUp || st.Weight != 1 {
		t.Fatalf("an unauthorized action changed the pool: %+v", st)
	}
	resp, b := ss.action("s3cret-token", "app", "weight", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the token: %d %s", resp.StatusCode, b)
	}
	if st := balancertest.StatusOf(p, a.URL); st.Weight != 7 {
		t.Fatalf("weight = %d", st.Weight)
	}
	if !ss.report().Actions {
		t.Error("report says actions are off")
	}
	out := logs.String()
	if strings.Contains(out, "s3cret") {
		t.Errorf("the token is in the logs:\n%s", out)
	}
	if !strings.Contains(out, "runtime action refused") || !strings.Contains(out, "reason=\"wrong token\"") ||
		!strings.Contains(out, "level=INFO msg=\"runtime action\" component=stats action=weight pool=app endpoint="+a.URL) ||
		!strings.Contains(out, "weight=7") || !strings.Contains(out, "remote=127.0.0.1:") {
		t.Errorf("logs:\n%s", out)
	}
}

func TestStatsActionsTakeEffect(t *testing.T) {
	a, b, c := balancertest.NewBackend(t), balancertest.NewBackend(t), balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL, b.URL}})
	const token = "tok"
	ss := newStatsServer(t, Config{Token: token}, []*balancer.Pool{p})
	send := func(n int) {
		for range n {
			if code, _, err := balancertest.Get(t, p.Client(), "http://upstream/"); err != nil || code != 200 {
				t.Fatalf("request: %d %v", code, err)
			}
		}
	}
	ok := func(action, body string) balancer.Status {
		t.Helper()
		resp, out := ss.action(token, "app", action, body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %d %s", action, body, resp.StatusCode, out)
		}
		var st balancer.Status
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	urlBody := func(u string) string { return fmt.Sprintf(`{"url": %q}`, u) }

	// Drain: the pool sends nothing more to a.
	st := ok("drain", urlBody(a.URL))
	if st.Endpoints[0].State != balancer.StateDraining || st.Endpoints[0].Serving {
		t.Fatalf("after drain: %+v", st.Endpoints[0])
	}
	before := a.Hits.Load()
	send(10)
	if a.Hits.Load() != before || b.Hits.Load() != 10 {
		t.Fatalf("drained a got %d requests, b %d", a.Hits.Load()-before, b.Hits.Load())
	}

	// Undrain: a is back in rotation.
	if st := ok("undrain", urlBody(a.URL)); st.Endpoints[0].State != balancer.StateUp {
		t.Fatalf("after undrain: %+v", st.Endpoints[0])
	}
	send(10)
	if a.Hits.Load() == before {
		t.Fatal("undrained a got nothing")
	}

	// Weight: a takes three shares out of four.
	if st := ok("weight", fmt.Sprintf(`{"url": %q, "weight": 3}`, a.URL)); st.Endpoints[0].Weight != 3 {
		t.Fatalf("after weight: %+v", st.Endpoints[0])
	}
	a0, b0 := a.Hits.Load(), b.Hits.Load()
	send(40)
	if da, db := a.Hits.Load()-a0, b.Hits.Load()-b0; da != 30 || db != 10 {
		t.Fatalf("weights 3:1 sent %d:%d", da, db)
	}

	// Add: c joins and takes traffic.
	st = ok("add", fmt.Sprintf(`{"url": %q, "weight": 2, "backup": false}`, c.URL))
	if len(st.Endpoints) != 3 || st.Endpoints[2].URL != c.URL || st.Endpoints[2].Weight != 2 {
		t.Fatalf("after add: %+v", st.Endpoints)
	}
	send(12)
	if c.Hits.Load() == 0 {
		t.Fatal("added c got nothing")
	}

	// Remove: a is gone, and gets nothing.
	st = ok("remove", urlBody(a.URL))
	if len(st.Endpoints) != 2 || st.Endpoints[0].URL != b.URL {
		t.Fatalf("after remove: %+v", st.Endpoints)
	}
	a0 = a.Hits.Load()
	send(10)
	if a.Hits.Load() != a0 {
		t.Fatal("removed a got requests")
	}
	if got := ss.report().Pools[0].Endpoints; len(got) != 2 {
		t.Fatalf("report after remove: %+v", got)
	}
}

func TestStatsDrainWaitsForRequestsInFlight(t *testing.T) {
	a, b := balancertest.NewBackend(t), balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL, b.URL}, Policy: balancer.PolicyFirst})
	const token = "tok"
	ss := newStatsServer(t, Config{Token: token, DrainTimeout: 50 * time.Millisecond}, []*balancer.Pool{p})
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		if code, body, err := balancertest.Get(t, p.Client(), "http://upstream/slow"); err != nil || code != 200 || body != a.URL {
			t.Errorf("request in flight: %d %q %v", code, body, err)
		}
	})
	wait.For(t, 5*time.Second, "a request in flight on a", func() bool { return a.InFlight.Load() == 1 })

	// The cap ends the wait: drained, but not idle yet.
	resp, out := ss.action(token, "app", "drain", fmt.Sprintf(`{"url": %q}`, a.URL))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("drain with a request in flight: %d %s", resp.StatusCode, out)
	}
	var st balancer.Status
	if err := json.Unmarshal(out, &st); err != nil || st.Endpoints[0].State != balancer.StateDraining || st.Endpoints[0].InFlight != 1 {
		t.Fatalf("after drain: %s %v", out, err)
	}

	// Once the request is done, drain answers that a is idle.
	close(a.Hold)
	wg.Wait()
	resp, out = ss.action(token, "app", "drain", fmt.Sprintf(`{"url": %q}`, a.URL))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drain when idle: %d %s", resp.StatusCode, out)
	}
}

func TestStatsErrors(t *testing.T) {
	a := balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL}})
	const token = "tok"
	ss := newStatsServer(t, Config{Token: token}, []*balancer.Pool{p})
	url := fmt.Sprintf(`{"url": %q}`, a.URL)
	for _, tc := range []struct {
		name, method, path, contentType, body string
		status                                int
		allow, detail                         string
	}{
		{"GET an action", "GET", "/api/pools/app/endpoints/drain", "", "", 405, "POST", "POST"},
		{"DELETE an action", "DELETE", "/api/pools/app/endpoints/remove", "", url, 405, "POST", "POST"},
		{"POST the page", "POST", "/", "application/json", "{}", 405, "GET, HEAD", "GET"},
		{"POST the JSON", "POST", "/api/status", "application/json", "{}", 405, "GET, HEAD", "GET"},
		{"unknown page", "GET", "/nope", "", "", 404, "", "no such page"},
		{"unknown pool", "POST", "/api/pools/nope/endpoints/drain", "application/json", url, 404, "", `"nope"`},
		{"unknown action", "POST", "/api/pools/app/endpoints/explode", "application/json", url, 404, "", "explode"},
		{"unknown endpoint", "POST", "/api/pools/app/endpoints/drain", "application/json", `{"url": "http://127.0.0.1:1"}`, 404, "", "http://127.0.0.1:1"},
		{"unknown endpoint on weight", "POST", "/api/pools/app/endpoints/weight", "", `{"url": "http://127.0.0.1:1", "weight": 2}`, 404, "", "no endpoint"},
		{"no body", "POST", "/api/pools/app/endpoints/drain", "application/json", "", 400, "", "JSON object"},
		{"not JSON", "POST", "/api/pools/app/endpoints/drain", "application/json", "url=x", 400, "", "JSON"},
		{"unknown field", "POST", "/api/pools/app/endpoints/weight", "application/json", `{"url": "http://x", "wieght": 2}`, 400, "", "wieght"},
		{"two objects", "POST", "/api/pools/app/endpoints/drain", "application/json", url + url, 400, "", "one JSON object"},
		{"form content type", "POST", "/api/pools/app/endpoints/drain", "application/x-www-form-urlencoded", url, 400, "", "application/json"},
		{"no url", "POST", "/api/pools/app/endpoints/drain", "application/json", `{}`, 400, "", "url"},
		{"no weight", "POST", "/api/pools/app/endpoints/weight", "application/json", url, 400, "", "weight"},
		{"weight 0", "POST", "/api/pools/app/endpoints/weight", "application/json", fmt.Sprintf(`{"url": %q, "weight": 0}`, a.URL), 422, "", "weight=\"0\": out of range"},
		{"weight too big", "POST", "/api/pools/app/endpoints/weight", "application/json", fmt.Sprintf(`{"url": %q, "weight": 5000}`, a.URL), 422, "", `Endpoint.Weight="5000": out of range (allowed: 1 to 1000`},
		{"add a bad weight", "POST", "/api/pools/app/endpoints/add", "application/json", `{"url": "http://127.0.0.1:2", "weight": -1}`, 422, "", "Endpoint.Weight"},
		{"add a bad URL", "POST", "/api/pools/app/endpoints/add", "application/json", `{"url": "ftp://127.0.0.1:2"}`, 422, "", "scheme must be http or https"},
		{"add twice", "POST", "/api/pools/app/endpoints/add", "application/json", url, 409, "", "already in the pool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := ss.do(tc.method, tc.path, token, tc.contentType, tc.body)
			pr := problemOf(t, resp, body, tc.status)
			if resp.Header.Get("Allow") != tc.allow {
				t.Errorf("Allow = %q, want %q", resp.Header.Get("Allow"), tc.allow)
			}
			if !strings.Contains(pr.Detail, tc.detail) || pr.Instance != tc.path {
				t.Errorf("problem %+v: want %q in the detail", pr, tc.detail)
			}
		})
	}
	if st := p.Snapshot(); len(st) != 1 || st[0].State != balancer.StateUp || st[0].Weight != 1 {
		t.Fatalf("a rejected action changed the pool: %+v", st)
	}
}

func TestStatsMetrics(t *testing.T) {
	a := balancertest.NewBackend(t)
	reg := tier.NewRegistry()
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL}}, balancer.WithRegistry(reg))
	_, _, _ = balancertest.Get(t, p.Client(), "http://upstream/")
	ss := newStatsServer(t, Config{}, []*balancer.Pool{p}, WithRegistry(reg))
	resp, body := ss.do("GET", "/metrics", "", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `threetier_balancer_endpoint_requests_total{endpoint="`+a.URL+`",pool="app"} 1`) {
		t.Fatalf("metrics: %d %s", resp.StatusCode, body)
	}

	without := newStatsServer(t, Config{}, []*balancer.Pool{p})
	resp, body = without.do("GET", "/metrics", "", "", "")
	problemOf(t, resp, body, http.StatusNotFound)
}

func TestStatsConfig(t *testing.T) {
	if got := (Config{}).withDefaults(); got.Listen != "127.0.0.1:8404" || got.Refresh != 2*time.Second || got.DrainTimeout != 30*time.Second || got.Token != "" {
		t.Fatalf("defaults: %+v", got)
	}
	var cfg Config
	err := tier.LoadEnvFrom([]string{"THREETIER_STATS_LISTEN=0.0.0.0:9000", "THREETIER_STATS_TOKEN=abc", "THREETIER_STATS_REFRESH=5s", "THREETIER_STATS_NAME=lb-2"}, EnvPrefix, &cfg)
	if err != nil || cfg.Listen != "0.0.0.0:9000" || cfg.Token != "abc" || cfg.Refresh != 5*time.Second || cfg.Name != "lb-2" {
		t.Fatalf("from env: %+v %v", cfg, err)
	}
	for _, bad := range []Config{{Refresh: -1}, {Refresh: time.Millisecond}, {DrainTimeout: -time.Second}, {Token: "a b"}, {MaxHeaderBytes: -1}} {
		var ce *tier.ConfigError
		if _, err := New(bad, nil); !errors.As(err, &ce) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	a := balancertest.NewBackend(t)
	p1 := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL}})
	p2 := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL}})
	var ce *tier.ConfigError
	if _, err := New(Config{}, []*balancer.Pool{p1, p2}); !errors.As(err, &ce) || !strings.Contains(err.Error(), "twice") {
		t.Errorf("two pools of one name: %v", err)
	}
	if _, err := New(Config{}, []*balancer.Pool{nil}); !errors.As(err, &ce) {
		t.Errorf("nil pool: %v", err)
	}
	s, err := New(Config{}, []*balancer.Pool{p1})
	host, _ := os.Hostname()
	if err != nil || s.Addr() != "127.0.0.1:8404" || s.Name() != cmp.Or(host, "balancer") {
		t.Fatalf("default listener: %v %q %q", err, s.Addr(), s.Name())
	}
	if named, err := New(Config{Name: "lb-2"}, []*balancer.Pool{p1}); err != nil || named.Name() != "lb-2" {
		t.Fatalf("named: %v", err)
	}
	srv := s.Server()
	if srv.ReadHeaderTimeout != 5*time.Second || srv.IdleTimeout != 120*time.Second || srv.MaxHeaderBytes != 16<<10 || s.Limits().BodyTimeout != tier.DefaultBodyTimeout {
		t.Fatalf("server settings: %+v", srv)
	}
}

// TestStatsServesTheNodesProbes: with WithHealth, the stats listener
// answers /healthz and /readyz from the node's checks (keepalived's and
// Kubernetes' probes); without it, those paths are not found.
func TestStatsServesTheNodesProbes(t *testing.T) {
	p := balancertest.NewPool(t, balancer.Config{Name: "web", Endpoints: []string{balancertest.NewBackend(t).URL}})
	var ready atomic.Bool
	health := &tier.Health{}
	health.Register("pool web", tier.CheckFunc(func(context.Context) error {
		if ready.Load() {
			return nil
		}
		return errors.New("no endpoint")
	}))
	s, err := New(Config{}, []*balancer.Pool{p}, WithHealth(health))
	if err != nil {
		t.Fatal(err)
	}
	code := func(h http.Handler, path string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w.Code
	}
	if c := code(s, "/healthz"); c != 200 {
		t.Fatalf("/healthz: %d", c)
	}
	if c := code(s, "/readyz"); c != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while not ready: %d", c)
	}
	ready.Store(true)
	if c := code(s, "/readyz"); c != 200 {
		t.Fatalf("/readyz when ready: %d", c)
	}
	bare, err := New(Config{}, []*balancer.Pool{p})
	if err != nil {
		t.Fatal(err)
	}
	if c := code(bare, "/readyz"); c != http.StatusNotFound {
		t.Fatalf("/readyz without WithHealth: %d", c)
	}
}
