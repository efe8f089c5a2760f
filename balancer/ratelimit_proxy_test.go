package balancer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
	"github.com/valyala/fasthttp"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (127.0.0.1, 127.0.0.2, ...).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}

// fetch sends GET url and returns the status and headers; the body is read
// and closed.
func fetch(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestRateLimitAnswers429WithTheDraftsFields(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := newBackend(t)
		reg := prometheus.NewRegistry()
		pool := newPool(t, Config{Name: "web", Endpoints: []string{backend.url}})
		px, err := NewProxy(ProxyConfig{Engine: engine, Listen: "127.0.0.1:0", RateLimit: 1, RateBurst: 2}, []*Pool{pool}, WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		if err := px.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = px.Stop(context.Background()) })
		url := "http://" + px.Addr() + "/"
		one, two := clientFrom("127.0.0.1"), clientFrom("127.0.0.2")
		for i := range 2 {
			if resp, _ := fetch(t, one, url); resp.StatusCode != http.StatusOK {
				t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
			}
		}
		resp, body := fetch(t, one, url)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("over the burst: %d %s", resp.StatusCode, body)
		}
		if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
		if got := resp.Header.Get("RateLimit-Policy"); got != `"default";q=2;w=2` {
			t.Fatalf("RateLimit-Policy %q", got)
		}
		if got := resp.Header.Get("RateLimit"); !strings.HasPrefix(got, `"default";r=0;t=`) {
			t.Fatalf("RateLimit %q", got)
		}
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil || p.Status != 429 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("not a problem: %s %q (%v)", resp.Header.Get("Content-Type"), body, err)
		}
		if resp, _ := fetch(t, two, url); resp.StatusCode != http.StatusOK {
			t.Fatalf("another client refused: %d", resp.StatusCode)
		}
		if n := testutil.ToFloat64(px.limits.limited.WithLabelValues("web")); n != 1 {
			t.Fatalf("threetier_proxy_rate_limited_total{route=web} = %v", n)
		}
	})
}

func TestRateKeyFollowsTrustedProxiesHeadersAndCookies(t *testing.T) {
	pool := newPool(t, Config{Name: "web", Endpoints: []string{"http://127.0.0.1:1"}})
	px, err := NewProxy(ProxyConfig{RateLimit: 1, TrustedProxies: []string{"10.0.0.0/8"}}, []*Pool{pool})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.1.1:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.9, 203.0.113.7, 10.2.2.2")
	if k := px.rateKey(httpKeySource{r}); k != "203.0.113.7" {
		t.Fatalf("through trusted proxies: %q", k)
	}
	r.RemoteAddr = "192.0.2.1:5000" // not trusted: its header is the client's claim
	if k := px.rateKey(httpKeySource{r}); k != "192.0.2.1" {
		t.Fatalf("from an untrusted peer: %q", k)
	}
	r.RemoteAddr = "[::ffff:192.0.2.1]:5000" // a dual-stack listener's IPv4 client
	if k := px.rateKey(httpKeySource{r}); k != "192.0.2.1" {
		t.Fatalf("an IPv4-mapped address: %q", k)
	}
	px.limits.key, _ = parseRateKey("header:x-api-key")
	r.Header.Set("X-Api-Key", "k1")
	if k := px.rateKey(httpKeySource{r}); k != "h:k1" {
		t.Fatalf("header key: %q", k)
	}
	px.limits.key, _ = parseRateKey("cookie:session")
	if k := px.rateKey(httpKeySource{r}); k != "192.0.2.1" {
		t.Fatalf("no cookie: %q, want the address", k)
	}
	r.AddCookie(&http.Cookie{Name: "session", Value: "s1"})
	if k := px.rateKey(httpKeySource{r}); k != "c:s1" {
		t.Fatalf("cookie key: %q", k)
	}
	// The fast engine's requests, as read from the wire, give the same
	// keys.
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n" +
		"X-Forwarded-For: 198.51.100.9, 203.0.113.7, 10.2.2.2\r\nX-Api-Key: k1\r\nCookie: other=1; session=s1\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.ParseIP("10.1.1.1"), Port: 5000}, nil)
	for rule, want := range map[string]string{"": "203.0.113.7", "header:x-api-key": "h:k1", "cookie:session": "c:s1", "cookie:none": "203.0.113.7"} {
		px.limits.key, _ = parseRateKey(rule)
		if k := px.rateKey((*fastRequest)(&ctx)); k != want {
			t.Errorf("fast request, key %q: %q, want %q", rule, k, want)
		}
	}
	for _, bad := range []string{"header:", "query:x", "header:a b"} {
		if err := (ProxyConfig{RateKey: bad}).Validate(); err == nil {
			t.Errorf("RateKey %q accepted", bad)
		}
	}
	if err := (ProxyConfig{RateLimit: -1, ConnLimit: -1}).Validate(); err == nil {
		t.Error("negative limits accepted")
	}
}

func TestConnLimitResetsTheConnectionOverTheCap(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := newBackend(t)
		reg := prometheus.NewRegistry()
		pool := newPool(t, Config{Name: "web", Endpoints: []string{backend.url}})
		px, err := NewProxy(ProxyConfig{Engine: engine, Listen: "127.0.0.1:0", ConnLimit: 1}, []*Pool{pool}, WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		if err := px.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = px.Stop(context.Background()) })
		held, err := net.Dial("tcp", px.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		wait.For(t, 5*time.Second, "the held connection to count", func() bool { return px.RateLimiter().Conns("127.0.0.1") == 1 })
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		if resp, err := c.Get("http://" + px.Addr() + "/"); err == nil {
			resp.Body.Close()
			t.Fatalf("a second connection over ConnLimit 1 served: %d", resp.StatusCode)
		}
		if resp, _ := fetch(t, clientFrom("127.0.0.2"), "http://"+px.Addr()+"/"); resp.StatusCode != http.StatusOK {
			t.Fatalf("another address refused: %d", resp.StatusCode)
		}
		if n := testutil.ToFloat64(px.limits.connsRefused); n != 1 {
			t.Fatalf("connections refused %v, want 1", n)
		}
		held.Close()
		wait.For(t, 5*time.Second, "the held connection's release", func() bool { return px.RateLimiter().Conns("127.0.0.1") == 0 })
		if resp, _ := fetch(t, c, "http://"+px.Addr()+"/"); resp.StatusCode != http.StatusOK {
			t.Fatalf("after the release: %d", resp.StatusCode)
		}
	})
}

// TestRateLimitKeyFloodStaysAtTheCap sends a million requests, each with
// another client address in X-Forwarded-For from a trusted proxy, through
// the front door's admission (a quarter of that under the race detector):
// the table stays at its cap and memory with
// it.
func TestRateLimitKeyFloodStaysAtTheCap(t *testing.T) {
	const capKeys = 20_000
	flood := 1_000_000
	if raceEnabled {
		flood = 250_000 // the race detector makes each request ten times dearer
	}
	pool := newPool(t, Config{Name: "web", Endpoints: []string{"http://127.0.0.1:1"}})
	px, err := NewProxy(ProxyConfig{RateLimit: 10, RateKeys: capKeys, TrustedProxies: []string{"127.0.0.1"}}, []*Pool{pool})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	xff := []string{""}
	r.Header["X-Forwarded-For"] = xff
	w := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var heapAtCap uint64
	for i := range flood {
		xff[0] = "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
		if !px.admitHTTP(w, r, "id", px.def) {
			t.Fatalf("request %d, a fresh key, refused", i)
		}
		if i == 2*capKeys {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			heapAtCap = m.HeapAlloc
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := px.RateLimiter().Len(); n > capKeys+capKeys/10 {
		t.Fatalf("%d keys after a flood, cap %d", n, capKeys)
	}
	// The heap after the whole flood is what it was once the table filled,
	// give or take a few MiB of garbage not yet collected.
	if after.HeapAlloc > heapAtCap+8<<20 {
		t.Fatalf("heap grew from %d MiB at the cap to %d MiB after %d keys", heapAtCap>>20, after.HeapAlloc>>20, flood)
	}
	t.Logf("heap: %d MiB before, %d MiB at the cap, %d MiB after %d keys", before.HeapAlloc>>20, heapAtCap>>20, after.HeapAlloc>>20, flood)
}

// BenchmarkAdmitHTTP is the cost of the limit on a request that passes:
// the client key from the address, the table's Allow.
func BenchmarkAdmitHTTP(b *testing.B) {
	pool := newPool(b, Config{Name: "web", Endpoints: []string{"http://127.0.0.1:1"}})
	px, err := NewProxy(ProxyConfig{RateLimit: 1e9}, []*Pool{pool})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*http.Request, 256)
	for i := range reqs {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/", nil)
		reqs[i].RemoteAddr = "192.0.2." + strconv.Itoa(i) + ":40000"
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if !px.admitHTTP(w, reqs[i&255], "id", px.def) {
				b.Fatal("refused")
			}
			i++
		}
	})
}

func TestRateLimitsFromEnv(t *testing.T) {
	var cfg ProxyConfig
	err := tier.LoadEnvFrom([]string{"THREETIER_PROXY_RATE_LIMIT=2.5", "THREETIER_PROXY_RATE_BURST=10", "THREETIER_PROXY_CONN_LIMIT=20",
		"THREETIER_PROXY_RATE_KEY=cookie:session", "THREETIER_PROXY_RATE_KEYS=5000"}, ProxyEnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RateLimit != 2.5 || cfg.RateBurst != 10 || cfg.ConnLimit != 20 || cfg.RateKey != "cookie:session" || cfg.RateKeys != 5000 {
		t.Fatalf("loaded %+v", cfg)
	}
	err = tier.LoadEnvFrom([]string{"THREETIER_PROXY_RATE_KEY=query:k"}, ProxyEnvPrefix, &ProxyConfig{})
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Var != "THREETIER_PROXY_RATE_KEY" {
		t.Fatalf("a bad RateKey: %v", err)
	}
}

// TestRouteRateLimitCountsApart: a route with a lower limit of its own
// refuses at its rate, under its pool's policy, while another route and
// the door-wide limit go on for the same client.
func TestRouteRateLimitCountsApart(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		backend := newBackend(t)
		reg := prometheus.NewRegistry()
		web := newPool(t, Config{Name: "web", Endpoints: []string{backend.url}})
		api := newPool(t, Config{Name: "api", Endpoints: []string{backend.url}})
		cfg := ProxyConfig{Engine: engine, Listen: "127.0.0.1:0", RateLimit: 100, RateBurst: 100, DefaultPool: "web", Routes: []Route{
			{PathPrefix: "/api/", Pool: "api", RateLimit: 1, RateBurst: 2},
			{PathPrefix: "/v2/", Pool: "api", RateLimit: 1, RateBurst: 2}, // the same pool: the same bucket
			{PathPrefix: "/shop/", Pool: "web"},
		}}
		px, err := NewProxy(cfg, []*Pool{web, api}, WithRegistry(reg))
		if err != nil {
			t.Fatal(err)
		}
		if err := px.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = px.Stop(context.Background()) })
		base := "http://" + px.Addr()
		c := clientFrom("127.0.0.1")
		for _, path := range []string{"/api/a", "/v2/b"} {
			if resp, _ := fetch(t, c, base+path); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s within the route's burst: %d", path, resp.StatusCode)
			}
		}
		resp, body := fetch(t, c, base+"/api/c")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("over the route's burst: %d %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get("RateLimit-Policy"); got != `"api";q=2;w=2` {
			t.Fatalf("RateLimit-Policy %q", got)
		}
		if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
		for _, path := range []string{"/shop/x", "/", "/shop/y"} {
			if resp, _ := fetch(t, c, base+path); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s, under the door's limit, after the route's refusal: %d", path, resp.StatusCode)
			}
		}
		if n := testutil.ToFloat64(px.limits.limited.WithLabelValues("api")); n != 1 {
			t.Fatalf("threetier_proxy_rate_limited_total{route=api} = %v", n)
		}
		// The door's bucket was not touched by the route's requests.
		now := time.Now()
		if d := px.limits.limiter.Allow("127.0.0.1", now); d.Remaining != 100-3-1 {
			t.Fatalf("the door's bucket after 3 requests of its own: %+v", d)
		}
	})
}

func TestRouteRateLimitsAreValidated(t *testing.T) {
	for _, tc := range []struct {
		route Route
		more  []Route
		field string
	}{
		{route: Route{Pool: "web", RateLimit: -1}, field: "Routes[0].RateLimit"},
		{route: Route{Pool: "web", RateBurst: -1}, field: "Routes[0].RateBurst"},
		{route: Route{Pool: "web", RateBurst: 5}, field: "Routes[0].RateBurst"},
		{route: Route{Pool: strings.Repeat("p", 65), RateLimit: 1}, field: "Routes[0].RateLimit"},
		{route: Route{Pool: "web", RateLimit: 1}, more: []Route{{Pool: "web", RateLimit: 2}}, field: "Routes[1].RateLimit"},
	} {
		err := ProxyConfig{Routes: append([]Route{tc.route}, tc.more...)}.Validate()
		var ce *tier.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("routes %+v: %v, want a ConfigError on %s", append([]Route{tc.route}, tc.more...), err, tc.field)
		}
	}
	// Routes to one pool may agree, or leave the limit to the door.
	if err := (ProxyConfig{Routes: []Route{{Pool: "web", RateLimit: 2}, {Pool: "web"}, {Pool: "web", RateLimit: 2}}}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestRouteRateLimitsFromJSON(t *testing.T) {
	var cfg ProxyConfig
	if err := json.Unmarshal([]byte(`{"routes":[{"path_prefix":"/api/","pool":"api","rate_limit":2.5,"rate_burst":5}]}`), &cfg); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Routes[0]; r.RateLimit != 2.5 || r.RateBurst != 5 {
		t.Fatalf("loaded %+v", r)
	}
}
