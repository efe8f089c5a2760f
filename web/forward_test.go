package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/tier"
)

// seen is what the app tier received.
type seen struct {
	Path, RawQuery, Host, XFF, XFHost, XFProto, RequestID, Traceparent, Tracestate string
	BodyLen                                                                        int
}

// appTier starts an upstream that reports what it received as JSON and
// answers /api/missing (and /missing) with its own 404.
func appTier(t *testing.T) *httptest.Server {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/missing") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"title":"Not Found","status":404,"detail":"no such order"}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(seen{
			Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host,
			XFF: r.Header.Get("X-Forwarded-For"), XFHost: r.Header.Get("X-Forwarded-Host"), XFProto: r.Header.Get("X-Forwarded-Proto"),
			RequestID: r.Header.Get("X-Request-Id"), Traceparent: r.Header.Get("Traceparent"), Tracestate: r.Header.Get("Tracestate"),
			BodyLen: len(body),
		})
	}))
	t.Cleanup(app.Close)
	return app
}

func newPool(t *testing.T, cfg balancer.Config) *balancer.Pool {
	t.Helper()
	pool, err := balancer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

func TestForwardToAppTier(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		tr := newTree(t)
		app := appTier(t)
		pool := newPool(t, balancer.Config{Name: "app", Endpoints: []string{app.URL}})
		s := startServer(t, eng, Config{Files: FilesConfig{Root: tr.root, SPA: true}},
			WithForward(pool, ForwardConfig{Prefix: "/api/"}),
			WithForward(pool, ForwardConfig{Prefix: "/v2/", StripPrefix: true}))
		c := client(t)
		base := "http://" + s.Addr()

		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		r := do(t, c, "GET", base+"/api/orders/42?full=1", "X-Forwarded-For: 6.6.6.6", "Traceparent: "+tp, "Tracestate: vendor=x", "X-Request-Id: req-77")
		var got seen
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != 200 {
			t.Fatalf("forward: %d %s %v", r.status, r.body, err)
		}
		want := seen{Path: "/api/orders/42", RawQuery: "full=1", Host: strings.TrimPrefix(app.URL, "http://"),
			XFF: "127.0.0.1", XFHost: s.Addr(), XFProto: "http", RequestID: "req-77", Traceparent: tp, Tracestate: "vendor=x"}
		if got != want {
			t.Fatalf("app tier saw\n %+v\nwant\n %+v", got, want)
		}
		if r.header.Get("X-Request-Id") != "req-77" {
			t.Errorf("response request ID %q", r.header.Get("X-Request-Id"))
		}

		// Without a request ID from the client, the one the web tier made goes on.
		r = do(t, c, "GET", base+"/api")
		_ = json.Unmarshal(r.body, &got)
		if got.Path != "/api" || got.RequestID == "" || got.RequestID != r.header.Get("X-Request-Id") {
			t.Errorf("/api: path %q request ID %q (response %q)", got.Path, got.RequestID, r.header.Get("X-Request-Id"))
		}
		// Stripped prefix.
		r = do(t, c, "POST", base+"/v2/orders", "Content-Type: application/json")
		_ = json.Unmarshal(r.body, &got)
		if got.Path != "/orders" {
			t.Errorf("strip prefix: app saw %q", got.Path)
		}
		r = do(t, c, "GET", base+"/v2")
		_ = json.Unmarshal(r.body, &got)
		if got.Path != "/" {
			t.Errorf("strip prefix of the bare prefix: app saw %q", got.Path)
		}
		// The app tier's 404 reaches the client, even with the SPA fallback on.
		r = do(t, c, "GET", base+"/api/missing", "Accept: text/html")
		if r.status != 404 || !strings.Contains(string(r.body), "no such order") {
			t.Errorf("API 404: %d %s", r.status, r.body)
		}
		// Files are still files.
		if r := do(t, c, "GET", base+"/tiny.txt"); r.status != 200 || string(r.body) != "tiny\n" {
			t.Errorf("file next to forwarding: %d %q", r.status, r.body)
		}
	})
}

func TestForwardTrustsForwardedOnlyWhenTold(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		app := appTier(t)
		pool := newPool(t, balancer.Config{Endpoints: []string{app.URL}})
		s := startServer(t, eng, Config{}, WithForward(pool, ForwardConfig{Prefix: "/api/", TrustForwarded: true}))
		r := do(t, client(t), "GET", "http://"+s.Addr()+"/api/x", "X-Forwarded-For: 10.1.2.3")
		var got seen
		_ = json.Unmarshal(r.body, &got)
		if got.XFF != "10.1.2.3, 127.0.0.1" {
			t.Fatalf("X-Forwarded-For %q", got.XFF)
		}
	})
}

func TestForwardBodyLimit(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		app := appTier(t)
		pool := newPool(t, balancer.Config{Endpoints: []string{app.URL}})
		s := startServer(t, eng, Config{}, WithForward(pool, ForwardConfig{Prefix: "/api/", MaxBodyBytes: 1024}))
		c := client(t)
		url := "http://" + s.Addr() + "/api/upload"
		wantProblem(t, post(t, c, url, bytes.Repeat([]byte("x"), 2048), false), 413)
		wantProblem(t, post(t, c, url, bytes.Repeat([]byte("x"), 4096), true), 413) // chunked: cut while streaming
		r := post(t, c, url, bytes.Repeat([]byte("x"), 1000), true)
		var got seen
		if err := json.Unmarshal(r.body, &got); err != nil || got.BodyLen != 1000 {
			t.Fatalf("body within the limit: %d %s", r.status, r.body)
		}
	})
}

// post sends body, with no Content-Length when chunked.
func post(t *testing.T, c *http.Client, url string, body []byte, chunked bool) result {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length
	}
	req, _ := http.NewRequest("POST", url, rd)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, b}
}

func TestForwardFailures(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		// 504: the app tier does not answer within the timeout.
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer slow.Close()
		defer close(release)
		// 502: the app tier drops the connection.
		dropper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		}))
		defer dropper.Close()
		// 503: the only endpoint is drained.
		app := appTier(t)
		drained := newPool(t, balancer.Config{Endpoints: []string{app.URL}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := drained.Drain(ctx, app.URL); err != nil {
			t.Fatal(err)
		}
		// 502 too: nothing listens.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + ln.Addr().String()
		ln.Close()

		s := startServer(t, eng, Config{},
			WithForward(newPool(t, balancer.Config{Endpoints: []string{slow.URL}}), ForwardConfig{Prefix: "/slow/", ResponseTimeout: 200 * time.Millisecond}),
			WithForward(newPool(t, balancer.Config{Endpoints: []string{dropper.URL}}), ForwardConfig{Prefix: "/drop/"}),
			WithForward(newPool(t, balancer.Config{Endpoints: []string{dead}}), ForwardConfig{Prefix: "/dead/"}),
			WithForward(drained, ForwardConfig{Prefix: "/drained/"}),
		)
		c := client(t)
		base := "http://" + s.Addr()
		wantProblem(t, do(t, c, "GET", base+"/slow/x"), 504)
		wantProblem(t, do(t, c, "POST", base+"/drop/x"), 502)
		wantProblem(t, do(t, c, "GET", base+"/dead/x"), 502)
		r := do(t, c, "GET", base+"/drained/x")
		wantProblem(t, r, 503)
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})
}

// The app tier's own security headers and request ID replace the web
// tier's defaults instead of being sent beside them; the defaults still go
// on responses that lack them, including the web tier's own errors.
func TestForwardAppHeadersWin(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/plain" {
				_, _ = io.WriteString(w, "plain")
				return
			}
			h := w.Header()
			h.Set("X-Frame-Options", "DENY")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Request-Id", r.Header.Get("X-Request-Id"))
			_, _ = io.WriteString(w, "own headers")
		}))
		t.Cleanup(app.Close)
		pool := newPool(t, balancer.Config{Name: "app", Endpoints: []string{app.URL}})
		s := startServer(t, eng, Config{}, WithForward(pool, ForwardConfig{Prefix: "/api/", MaxBodyBytes: 4}))
		c := client(t)
		base := "http://" + s.Addr()

		r := do(t, c, "GET", base+"/api/own", "X-Request-Id: req-1")
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
			"X-Content-Type-Options": "nosniff", "X-Request-Id": "req-1"} {
			if got := r.header.Values(k); len(got) != 1 || got[0] != want {
				t.Errorf("%s: %q, want just %q", k, got, want)
			}
		}
		r = do(t, c, "GET", base+"/api/plain")
		for k, want := range map[string]string{"X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "strict-origin-when-cross-origin",
			"X-Content-Type-Options": "nosniff"} {
			if got := r.header.Values(k); len(got) != 1 || got[0] != want {
				t.Errorf("%s without the app's: %q, want %q", k, got, want)
			}
		}
		req, _ := http.NewRequest("POST", base+"/api/own", strings.NewReader("too long a body"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 413 || resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" || len(resp.Header.Values("X-Request-Id")) != 1 {
			t.Errorf("web tier's own error: %d %v", resp.StatusCode, resp.Header)
		}
	})
}

// TestForwardConfigFromEnv: a forwarded route loads from its variables,
// and a bad prefix is refused naming the variable behind it.
func TestForwardConfigFromEnv(t *testing.T) {
	var cfg ForwardConfig
	err := tier.LoadEnvFrom([]string{
		"THREETIER_WEB_FORWARD_PREFIX=/api/",
		"THREETIER_WEB_FORWARD_STRIP_PREFIX=true",
		"THREETIER_WEB_FORWARD_MAX_BODY_BYTES=2048",
		"THREETIER_WEB_FORWARD_RESPONSE_TIMEOUT=3s",
		"THREETIER_WEB_FORWARD_TRUST_FORWARDED=true",
	}, ForwardEnvPrefix, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := ForwardConfig{Prefix: "/api/", StripPrefix: true, MaxBodyBytes: 2048, ResponseTimeout: 3 * time.Second, TrustForwarded: true}
	if cfg != want {
		t.Fatalf("got %+v, want %+v", cfg, want)
	}
	err = tier.LoadEnvFrom([]string{"THREETIER_WEB_FORWARD_PREFIX=api"}, ForwardEnvPrefix, &ForwardConfig{})
	var ce *tier.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Prefix" || ce.Var != "THREETIER_WEB_FORWARD_PREFIX" {
		t.Fatalf("bad prefix: %v", err)
	}
}
