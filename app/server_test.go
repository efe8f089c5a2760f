package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

type createItem struct {
	ID    int      `param:"id" json:"-" validate:"gte=1"`
	Limit int      `query:"limit" json:"-" validate:"omitempty,lte=100"`
	Name  string   `json:"name" validate:"required,min=2"`
	Email string   `json:"email,omitempty" validate:"omitempty,email"`
	Tags  []string `json:"tags,omitempty" validate:"max=3,dive,required"`
}

// problemServer serves one route per error path.
type problemServer struct {
	*Server
	url     string
	handled atomic.Int64 // calls that reached the item handler
	hold    chan struct{}
	held    chan struct{}
	logs    *syncbuf.Buffer
}

func newProblemServer(t *testing.T, cfg Config) *problemServer {
	t.Helper()
	log, logs := newTestLogger(t)
	reg := tier.NewRegistry()
	guards := NewGuards(WithRegistry(reg), WithLogger(log))
	s := newTestServer(t, cfg, WithLogger(log), WithRegistry(reg), WithGuards(guards),
		WithProblems(func(err error) *tier.Problem {
			if errors.Is(err, errNotFound) {
				return tier.NewProblem(http.StatusNotFound, "no such item")
			}
			return nil
		}))
	ps := &problemServer{Server: s, hold: make(chan struct{}), held: make(chan struct{}, 16), logs: logs}
	open, err := guards.Add("open", GuardConfig{ConsecutiveFailures: 1, OpenFor: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = Do(context.Background(), open, func(context.Context) (int, error) { return 0, errDown })
	slow, err := guards.Add("slow", GuardConfig{Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}

	e := s.Echo()
	e.POST("/items/:id", Handle(http.StatusCreated, func(c echo.Context, in createItem) (createItem, error) {
		ps.handled.Add(1)
		if tier.RequestID(c.Request().Context()) == "" {
			return in, errors.New("no request ID in the context")
		}
		return in, nil
	}))
	e.GET("/items/:id", func(c echo.Context) error { return errNotFound })
	e.GET("/panic", func(c echo.Context) error { panic("boom") })
	e.GET("/fail", func(c echo.Context) error { return errors.New("secret internal detail") })
	e.GET("/open", func(c echo.Context) error {
		_, err := Do(c.Request().Context(), open, func(context.Context) (int, error) { return 1, nil })
		return err
	})
	e.GET("/slow-dep", func(c echo.Context) error {
		_, err := Do(c.Request().Context(), slow, func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		})
		return err
	})
	e.GET("/slow", func(c echo.Context) error {
		<-c.Request().Context().Done()
		return c.Request().Context().Err()
	})
	e.GET("/hold", func(c echo.Context) error {
		ps.held <- struct{}{}
		<-ps.hold
		return c.String(http.StatusOK, "held")
	})
	ps.url = startServer(t, s)
	return ps
}

type exchange struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, c *http.Client, method, url, contentType string, body io.Reader, hdr ...string) exchange {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return exchange{res.StatusCode, res.Header, b}
}

// checkProblem asserts a problem+json answer and returns it.
func checkProblem(t *testing.T, x exchange, status int, path string) tier.Problem {
	t.Helper()
	if x.status != status {
		t.Fatalf("status %d, want %d; body %s", x.status, status, x.body)
	}
	if ct := x.header.Get("Content-Type"); ct != tier.ContentTypeProblem {
		t.Fatalf("Content-Type %q, want %q; body %s", ct, tier.ContentTypeProblem, x.body)
	}
	var p tier.Problem
	if err := json.Unmarshal(x.body, &p); err != nil {
		t.Fatalf("body is not a problem: %v: %s", err, x.body)
	}
	if p.Status != status || p.Title == "" {
		t.Fatalf("problem %+v does not match status %d", p, status)
	}
	if id := x.header.Get(tier.HeaderRequestID); id == "" || p.RequestID != id {
		t.Fatalf("problem request_id %q, header %q: want the same, non-empty", p.RequestID, id)
	}
	if p.Instance != path {
		t.Fatalf("instance %q, want %q", p.Instance, path)
	}
	return p
}

func TestProblemJSONOnEveryErrorPath(t *testing.T) {
	ps := newProblemServer(t, Config{MaxBodyBytes: 1024, RequestTimeout: time.Second})
	c := testClient(t)
	const js = "application/json"
	big := `{"name":"` + strings.Repeat("x", 2048) + `"}`

	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		detail                          string   // a substring of the detail
		fields                          []string // invalid fields, in order
		retryAfter                      bool
	}{
		{name: "route not found", method: "GET", path: "/nope", status: 404},
		{name: "method not allowed", method: "DELETE", path: "/items/1", status: 405},
		{name: "malformed JSON", method: "POST", path: "/items/1", ctype: js, body: `{"name": "ab"`, status: 400, detail: "malformed JSON"},
		{name: "JSON syntax error", method: "POST", path: "/items/1", ctype: js, body: `{"name" "ab"}`, status: 400, detail: "malformed JSON body at byte"},
		{name: "data after the JSON value", method: "POST", path: "/items/1", ctype: js, body: `{"name":"ab"} {}`, status: 400, detail: "more data"},
		{name: "JSON array for an object", method: "POST", path: "/items/1", ctype: js, body: `[1,2]`, status: 400, detail: "must be an object"},
		{name: "bad path parameter", method: "POST", path: "/items/abc", ctype: js, body: `{"name":"ab"}`, status: 400, detail: "path parameter"},
		{name: "bad query parameter", method: "POST", path: "/items/1?limit=lots", ctype: js, body: `{"name":"ab"}`, status: 400, detail: "query parameter"},
		{name: "not JSON", method: "POST", path: "/items/1", ctype: "text/plain", body: `name=ab`, status: 415, detail: "application/json"},
		{name: "body too large", method: "POST", path: "/items/1", ctype: js, body: big, status: 413, detail: "1024 bytes"},
		{name: "invalid fields", method: "POST", path: "/items/0?limit=500", ctype: js, body: `{"name":"a","email":"nope","tags":["a","","c","d"]}`, status: 422,
			fields: []string{"id", "limit", "name", "email", "tags"}},
		{name: "wrong JSON type", method: "POST", path: "/items/1", ctype: js, body: `{"name":5}`, status: 422, fields: []string{"name"}},
		{name: "missing body", method: "POST", path: "/items/1", status: 422, fields: []string{"name"}},
		{name: "mapped by the caller", method: "GET", path: "/items/3", status: 404, detail: "no such item"},
		{name: "handler error", method: "GET", path: "/fail", status: 500},
		{name: "panic", method: "GET", path: "/panic", status: 500},
		{name: "open breaker", method: "GET", path: "/open", status: 503, retryAfter: true},
		{name: "dependency timeout", method: "GET", path: "/slow-dep", status: 504},
		{name: "request timeout", method: "GET", path: "/slow", status: 503, detail: "took longer than 1s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := ps.handled.Load()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			x := do(t, c, tc.method, ps.url+tc.path, tc.ctype, body)
			path, _, _ := strings.Cut(tc.path, "?")
			p := checkProblem(t, x, tc.status, path)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q, want it to say %q", p.Detail, tc.detail)
			}
			var fields []string
			for _, f := range p.Errors {
				fields = append(fields, f.Field)
				if f.Detail == "" {
					t.Errorf("field %q has no detail", f.Field)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("invalid fields %v, want %v (%s)", fields, tc.fields, x.body)
			}
			if got := x.header.Get("Retry-After") != ""; got != tc.retryAfter {
				t.Errorf("Retry-After %q, want present=%v", x.header.Get("Retry-After"), tc.retryAfter)
			}
			if ps.handled.Load() != before {
				t.Error("a rejected request reached the handler")
			}
			if strings.Contains(string(x.body), "secret") || strings.Contains(string(x.body), "boom") {
				t.Errorf("the body leaks the internal error: %s", x.body)
			}
		})
	}
	x := do(t, c, "DELETE", ps.url+"/items/1", "", nil)
	if allow := x.header.Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
		t.Errorf("405 Allow header %q, want GET and POST", allow)
	}

	// A chunked body past the limit is cut off while reading.
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte(big))
		_ = pw.Close()
	}()
	checkProblem(t, do(t, c, "POST", ps.url+"/items/1", js, pr), 413, "/items/1")

	// The valid request does reach the handler.
	x = do(t, c, "POST", ps.url+"/items/5?limit=10", js, strings.NewReader(`{"name":"widget","tags":["a"]}`))
	if x.status != http.StatusCreated || ps.handled.Load() != 1 {
		t.Fatalf("valid request: %d %s", x.status, x.body)
	}
	var got createItem
	if err := json.Unmarshal(x.body, &got); err != nil || got.Name != "widget" {
		t.Fatalf("echoed %s (%v)", x.body, err)
	}

	logs := ps.logs.String()
	if !strings.Contains(logs, "panic serving request") || !strings.Contains(logs, "goroutine ") || !strings.Contains(logs, "boom") {
		t.Errorf("the panic was not logged with its stack:\n%s", logs)
	}
	if !strings.Contains(logs, "secret internal detail") {
		t.Error("the handler's error was not logged")
	}
}

func TestSheddingAnswers503AtOnce(t *testing.T) {
	ps := newProblemServer(t, Config{MaxInFlight: 1, ShedRetryAfter: 3 * time.Second, MetricsPath: "/metrics"})
	c := testClient(t)
	done := make(chan exchange, 1)
	go func() { done <- do(t, c, "GET", ps.url+"/hold", "", nil) }()
	<-ps.held
	start := time.Now()
	x := do(t, c, "GET", ps.url+"/hold", "", nil)
	took := time.Since(start)
	p := checkProblem(t, x, http.StatusServiceUnavailable, "/hold")
	if x.header.Get("Retry-After") != "3" || !strings.Contains(p.Detail, "overloaded") {
		t.Fatalf("shed answer: Retry-After %q, detail %q", x.header.Get("Retry-After"), p.Detail)
	}
	t.Logf("shed answer took %s", took)
	// Probes are never shed.
	if x := do(t, c, "GET", ps.url+"/healthz", "", nil); x.status != http.StatusOK {
		t.Fatalf("/healthz while saturated: %d", x.status)
	}
	if x := do(t, c, "GET", ps.url+"/metrics", "", nil); !bytes.Contains(x.body, []byte("threetier_app_requests_shed_total 1\n")) {
		t.Fatalf("/metrics does not count the shed request:\n%s", x.body)
	}
	close(ps.hold)
	if x := <-done; x.status != http.StatusOK {
		t.Fatalf("held request: %d", x.status)
	}
}

func TestRequestID(t *testing.T) {
	ps := newProblemServer(t, Config{})
	c := testClient(t)
	x := do(t, c, "POST", ps.url+"/items/1", "application/json", strings.NewReader(`{"name":"ab"}`), tier.HeaderRequestID, "caller-id.42")
	if x.status != http.StatusCreated || x.header.Get(tier.HeaderRequestID) != "caller-id.42" {
		t.Fatalf("%d, request ID %q: want the caller's kept", x.status, x.header.Get(tier.HeaderRequestID))
	}
	var line map[string]any
	for l := range strings.Lines(ps.logs.String()) {
		if strings.Contains(l, `"msg":"access"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["request_id"] != "caller-id.42" || line["method"] != "POST" || line["uri"] != "/items/1" ||
		line["route"] != "/items/:id" || line["status"] != float64(201) || line["duration"] == nil {
		t.Fatalf("access log line %v", line)
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 200), "new\nline"} {
		x := do(t, c, "GET", ps.url+"/nope", "", nil, tier.HeaderRequestID, strings.ReplaceAll(bad, "\n", "%0A"))
		if id := x.header.Get(tier.HeaderRequestID); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Fatalf("request ID %q for an unusable incoming one, want a fresh one", id)
		}
	}
}

func TestReadyzListsGuards(t *testing.T) {
	reg := tier.NewRegistry()
	guards := NewGuards(WithRegistry(reg))
	db, err := guards.Add("db", GuardConfig{ConsecutiveFailures: 1, UnreadyWhenOpen: true, OpenFor: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := guards.Add("search", GuardConfig{ConsecutiveFailures: 1}); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{MetricsPath: "/metrics"}, WithRegistry(reg), WithGuards(guards))
	url := startServer(t, s)
	c := testClient(t)

	type body struct {
		tier.Report
		Guards []GuardStatus `json:"guards"`
	}
	ready := func() (int, body) {
		x := do(t, c, "GET", url+"/readyz", "", nil)
		var b body
		if err := json.Unmarshal(x.body, &b); err != nil {
			t.Fatalf("%v: %s", err, x.body)
		}
		return x.status, b
	}
	status, b := ready()
	if status != http.StatusOK || !b.Ready || len(b.Guards) != 2 || b.Guards[0].Name != "db" || b.Guards[0].State != "closed" || len(b.Checks) != 2 {
		t.Fatalf("%d %+v", status, b)
	}
	// An open breaker that does not make the tier unready is listed only.
	_, _ = Do(context.Background(), guards.Get("search"), func(context.Context) (int, error) { return 0, errDown })
	status, b = ready()
	if status != http.StatusOK || b.Guards[1].State != "open" {
		t.Fatalf("search open: %d %+v", status, b)
	}
	_, _ = Do(context.Background(), db, func(context.Context) (int, error) { return 0, errDown })
	status, b = ready()
	if status != http.StatusServiceUnavailable || b.Ready || b.Guards[0].State != "open" || !b.Guards[0].Unready || b.Guards[0].OpenForMillis <= 0 {
		t.Fatalf("db open: %d %+v", status, b)
	}
	if f := b.Failed(); len(f) != 1 || f[0] != "guard:db" {
		t.Fatalf("failed checks %v", f)
	}
	for _, m := range []string{"GET", "HEAD"} {
		if x := do(t, c, m, url+"/healthz", "", nil); x.status != http.StatusOK {
			t.Fatalf("%s /healthz %d", m, x.status)
		}
	}

	x := do(t, c, "GET", url+"/metrics", "", nil)
	for _, want := range []string{
		`threetier_app_requests_total{code="503",method="GET",route="/readyz"}`,
		`threetier_app_guard_state{guard="db"} 2`,
		`threetier_app_guard_calls_total{guard="db",outcome="failure"} 1`,
		`threetier_app_guard_call_duration_seconds_bucket{guard="db"`,
		`threetier_app_in_flight_limit 1024`,
	} {
		if !bytes.Contains(x.body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// The public listener serves no metrics unless a path asks for them, in
// the web tier's words: MetricsPath empty or "-" is off.
func TestMetricsPath(t *testing.T) {
	c := testClient(t)
	for _, tc := range []struct {
		name, path, get string
		reg             bool
		want            int
	}{
		{"default", "", "/metrics", true, http.StatusNotFound},
		{"asked", "/metrics", "/metrics", true, http.StatusOK},
		{"custom", "/internal/metrics", "/internal/metrics", true, http.StatusOK},
		{"custom leaves /metrics alone", "/internal/metrics", "/metrics", true, http.StatusNotFound},
		{"off", "-", "/metrics", true, http.StatusNotFound},
		{"no registry", "/metrics", "/metrics", false, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.reg {
				opts = append(opts, WithRegistry(tier.NewRegistry()))
			}
			url := startServer(t, newTestServer(t, Config{MetricsPath: tc.path}, opts...))
			do(t, c, "GET", url+"/healthz", "", nil)
			x := do(t, c, "GET", url+tc.get, "", nil)
			if x.status != tc.want {
				t.Fatalf("GET %s: %d, want %d", tc.get, x.status, tc.want)
			}
			if tc.want == http.StatusOK && !bytes.Contains(x.body, []byte(`threetier_app_requests_total{code="200",method="GET",route="/healthz"}`)) {
				t.Errorf("metrics page lacks the request counter:\n%s", x.body)
			}
		})
	}
	for _, bad := range []string{"metrics", "/metrics/:name", "/metrics/*"} {
		if _, err := New(Config{MetricsPath: bad}); err == nil || !strings.Contains(err.Error(), "MetricsPath") {
			t.Errorf("MetricsPath %q: %v", bad, err)
		}
	}
}

func TestCORS(t *testing.T) {
	s := newTestServer(t, Config{CORSOrigins: []string{"https://shop.example"}})
	s.Echo().GET("/x", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	url := startServer(t, s)
	c := testClient(t)
	x := do(t, c, "OPTIONS", url+"/x", "", nil, "Origin", "https://shop.example", "Access-Control-Request-Method", "GET")
	if x.status != http.StatusNoContent || x.header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("preflight: %d %v", x.status, x.header)
	}
	x = do(t, c, "GET", url+"/x", "", nil, "Origin", "https://evil.example")
	if x.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS allowed an unlisted origin: %v", x.header)
	}
}

func TestConfig(t *testing.T) {
	var cfg Config
	err := tier.LoadEnvFrom([]string{
		"THREETIER_APP_MAX_IN_FLIGHT=64", "THREETIER_APP_SHED_LATENCY=50ms", "THREETIER_APP_CORS_ORIGINS=https://a,https://b",
	}, EnvPrefix, &cfg)
	if err != nil || cfg.MaxInFlight != 64 || cfg.ShedLatency != 50*time.Millisecond || len(cfg.CORSOrigins) != 2 {
		t.Fatalf("%+v, %v", cfg, err)
	}
	cfg = Config{}
	err = tier.LoadEnvFrom([]string{"THREETIER_APP_SHED_LATENCY=-1s", "THREETIER_APP_READY_PATH=ready"}, EnvPrefix, &cfg)
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "THREETIER_APP_SHED_LATENCY") || !strings.Contains(err.Error(), "THREETIER_APP_READY_PATH") {
		t.Fatalf("err = %v, want both variables named", err)
	}
	if _, err := New(Config{ShedLatency: -1}); err == nil {
		t.Fatal("New accepted an invalid config")
	}
	d := DefaultConfig()
	if d.MaxInFlight != DefaultMaxInFlight || d.RequestTimeout != DefaultRequestTimeout || d.Listen != DefaultListen {
		t.Fatalf("defaults %+v", d)
	}
	// Two servers on one registry collide, clearly.
	reg := prometheus.NewRegistry()
	if _, err := New(Config{}, WithRegistry(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{}, WithRegistry(reg)); err == nil {
		t.Fatal("a second server registered the same metrics without error")
	}
}

// Under tier.Run the server drains: a request in flight when the context
// ends still gets its answer, and Run returns cleanly.
func TestRunDrainsInFlight(t *testing.T) {
	s := newTestServer(t, Config{})
	release := make(chan struct{})
	entered := make(chan struct{})
	s.Echo().GET("/slow", func(c echo.Context) error {
		close(entered)
		<-release
		return c.String(http.StatusOK, "finished")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	ran := make(chan error, 1)
	go func() {
		ran <- tier.Runner{StopTimeout: 10 * time.Second, Started: func() { close(started) }}.Run(ctx, s)
	}()
	<-started
	c := testClient(t)
	got := make(chan exchange, 1)
	go func() { got <- do(t, c, "GET", "http://"+s.Addr()+"/slow", "", nil) }()
	<-entered
	cancel()
	wait.For(t, 5*time.Second, "the listener to close", func() bool {
		conn, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	close(release)
	if x := <-got; x.status != http.StatusOK || string(x.body) != "finished" {
		t.Fatalf("in-flight request: %d %s", x.status, x.body)
	}
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestGuardConfigFromEnv(t *testing.T) {
	var cfg GuardConfig
	err := tier.LoadEnvFrom([]string{
		"THREETIER_APP_GUARD_USERS_TIMEOUT=300ms", "THREETIER_APP_GUARD_USERS_MAX_CONCURRENT=8",
		"THREETIER_APP_GUARD_USERS_UNREADY_WHEN_OPEN=true", "THREETIER_APP_GUARD_USERS_FAILURE_RATIO=0.3",
	}, EnvPrefix+"GUARD_USERS_", &cfg)
	if err != nil || cfg.Timeout != 300*time.Millisecond || cfg.MaxConcurrent != 8 || !cfg.UnreadyWhenOpen || cfg.FailureRatio != 0.3 {
		t.Fatalf("%+v, %v", cfg, err)
	}
	d := DefaultGuardConfig()
	if d.Timeout != DefaultCallTimeout || d.Attempts != DefaultAttempts || d.OpenFor != DefaultOpenFor {
		t.Fatalf("defaults %+v", d)
	}
}

func TestLimitsFromEnv(t *testing.T) {
	var cfg Config
	err := tier.LoadEnvFrom([]string{"THREETIER_APP_BODY_TIMEOUT=5s", "THREETIER_APP_SEND_TIMEOUT=-1s", "THREETIER_APP_MAX_CONNS=300"}, EnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BodyTimeout != 5*time.Second || cfg.SendTimeout != -time.Second || cfg.MaxConns != 300 {
		t.Fatalf("%+v", cfg.Limits)
	}
	err = tier.LoadEnvFrom([]string{"THREETIER_APP_MAX_CONNS=-1"}, EnvPrefix, &Config{})
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Var != "THREETIER_APP_MAX_CONNS" {
		t.Fatalf("negative MaxConns: %v", err)
	}
}

func TestConfigErrorsNameTheVariableUnderTheLoadedPrefix(t *testing.T) {
	err := tier.LoadEnvFrom([]string{"THREETIER_APP_B_MAX_CONNS=-1", "THREETIER_APP_B_READY_PATH=ready"}, EnvPrefix+"B_", &Config{})
	for _, want := range []string{"THREETIER_APP_B_MAX_CONNS=", "THREETIER_APP_B_READY_PATH="} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %s", err, want)
		}
	}
	err = tier.LoadEnvFrom([]string{"THREETIER_APP_GUARD_DB_BACKOFF=-1s"}, EnvPrefix+"GUARD_DB_", &GuardConfig{})
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Var != "THREETIER_APP_GUARD_DB_BACKOFF" || ce.Field != "Backoff" {
		t.Fatalf("negative Backoff: %v", err)
	}
}

func TestServerTakesItsName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{{"", "app"}, {"app-2", "app-2"}} {
		srv, err := New(Config{Name: tc.name, Listen: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if got := srv.Name(); got != tc.want {
			t.Errorf("Config{Name: %q}: Name() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestMaxHeaderBytes: a head over Config.MaxHeaderBytes is refused with
// 431 (net/http allows 4 KiB of slack beyond it); one within it is served.
func TestMaxHeaderBytes(t *testing.T) {
	if got := DefaultConfig().MaxHeaderBytes; got != DefaultMaxHeaderBytes {
		t.Fatalf("default MaxHeaderBytes = %d, want %d", got, DefaultMaxHeaderBytes)
	}
	base := startServer(t, newTestServer(t, Config{MaxHeaderBytes: 2048}))
	for _, c := range []struct {
		size int
		want int
	}{{1024, http.StatusOK}, {16 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", c.size))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%d-byte header: %v", c.size, err)
		}
		_ = res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%d-byte header: status %d, want %d", c.size, res.StatusCode, c.want)
		}
	}
	if err := (Config{MaxHeaderBytes: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "MaxHeaderBytes") {
		t.Errorf("negative MaxHeaderBytes: %v", err)
	}
}
