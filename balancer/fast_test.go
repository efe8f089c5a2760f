package balancer

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/balancer/internal/h1"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/tier"
)

// fastFront serves a Proxy on the fast engine over the pool "orders" of
// the given backends, routed by /orders/, with a registry and an access
// log of its own.
func fastFront(t *testing.T, pcfg Config, handlers ...http.Handler) (string, *Proxy, *prometheus.Registry, *syncbuf.Buffer) {
	t.Helper()
	for _, h := range handlers {
		pcfg.Endpoints = append(pcfg.Endpoints, newBackendServer(t, h))
	}
	pcfg.Name = "orders"
	reg, log := prometheus.NewRegistry(), &syncbuf.Buffer{}
	pool := newPool(t, pcfg)
	px, url := startProxyOn(t, EngineFast, ProxyConfig{Routes: []Route{{PathPrefix: "/orders/", Pool: "orders"}}, DefaultPool: "-"},
		[]*Pool{pool}, WithAccessLog(tier.AccessLogConfig{}), WithRegistry(reg), WithLogger(slog.New(slog.NewTextHandler(log, nil))))
	return url, px, reg, log
}

func TestFastRequestMetricsAndAccessLog(t *testing.T) {
	url, _, reg, log := fastFront(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	for _, path := range []string{"/orders/1", "/orders/2", "/elsewhere"} {
		resp, err := http.Post(url+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	wantProxyRequests(t, reg, `threetier_proxy_requests_total{code="200",method="POST",route="orders"} 2
threetier_proxy_requests_total{code="404",method="POST",route="unmatched"} 1
`)
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	var access []string
	for _, l := range lines {
		if strings.Contains(l, "msg=access") {
			access = append(access, l)
		}
	}
	if len(access) != 3 {
		t.Fatalf("access lines:\n%s", log)
	}
	for _, want := range []string{"method=POST", "uri=/orders/1", "pool=orders", "status=200", "bytes=2", "proto=HTTP/1.1", "remote=127.0.0.1:", "request_id="} {
		if !strings.Contains(access[0], want) {
			t.Errorf("access line %q lacks %q", access[0], want)
		}
	}
}

// A panic on the fast path before the answer is a 500 problem under the
// request's ID, logged with its stack.
func TestFastPanicIsAProblem(t *testing.T) {
	url, px, reg, log := fastFront(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	px.routes[0].pool.fast = nil // the attempt dereferences it
	wantPanicProblem(t, url, reg, log, "")
}

// An upstream whose body ends before its length, streamed or buffered,
// never reaches the client as a clean answer: a buffered one becomes a
// 502, a streamed one is cut off.
func TestFastUpstreamBodyCutOff(t *testing.T) {
	for _, size := range []int{100, 1 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			url, _, _, log := fastFront(t, Config{Retry: RetryConfig{Attempts: 1}}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(size))
				_, _ = io.WriteString(w, strings.Repeat("x", size/2))
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}))
			resp, err := http.Get(url + "/orders/1")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if size <= fastBufferedBody {
				if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
					t.Fatalf("%d %q", resp.StatusCode, body)
				}
				return
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(body) >= size {
				t.Fatalf("%d bytes, %v: the client must see the answer cut off", len(body), err)
			}
			if !strings.Contains(log.String(), "upstream body cut off") {
				t.Fatalf("log:\n%s", log)
			}
		})
	}
}

// Answers of every shape pass whole: no body (HEAD, 204, 304), a known
// length past the buffered size, chunked, and until the upstream closes.
func TestFastAnswerShapes(t *testing.T) {
	big := strings.Repeat("0123456789", 20000)
	url, _, _, _ := fastFront(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/orders/none":
			w.WriteHeader(http.StatusNoContent)
		case "/orders/same":
			w.WriteHeader(http.StatusNotModified)
		case "/orders/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = io.WriteString(w, big)
		case "/orders/chunked":
			for i := range 3 {
				_, _ = io.WriteString(w, "part"+strconv.Itoa(i)+";")
				w.(http.Flusher).Flush()
			}
		case "/orders/close":
			w.Header().Set("Connection", "close")
			c, brw, _ := http.NewResponseController(w).Hijack()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
			_ = brw.Flush()
			_ = c.Close()
		default:
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		}
	}))
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"HEAD", "/orders/x", 200, ""},
		{"GET", "/orders/x", 200, "hello"},
		{"GET", "/orders/none", 204, ""},
		{"GET", "/orders/same", 304, ""},
		{"GET", "/orders/big", 200, big},
		{"GET", "/orders/chunked", 200, "part0;part1;part2;"},
		{"GET", "/orders/close", 200, "until the end"},
		{"GET", "/orders/x", 200, "hello"}, // the connections kept are sound
	} {
		req, _ := http.NewRequest(tc.method, url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || string(body) != tc.body {
			t.Errorf("%s %s: %d %d bytes %v", tc.method, tc.path, resp.StatusCode, len(body), err)
		}
		if tc.method == "HEAD" && resp.ContentLength != 5 {
			t.Errorf("HEAD: Content-Length %d", resp.ContentLength)
		}
	}
}

// A request the client pipelines behind another gets its own answer,
// after the first's.
func TestFastPipelined(t *testing.T) {
	url, _, _, _ := fastFront(t, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	got := rawExchange(t, url, "GET /orders/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /orders/2 HTTP/1.1\r\nHost: x\r\n\r\n", "/orders/2")
	br := bufio.NewReader(strings.NewReader(got))
	for _, want := range []string{"/orders/1", "/orders/2"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%v in %q", err, got)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Fatalf("%q, want %q", b, want)
		}
	}
}

// newBackendServer serves h on a loopback httptest server and returns its
// URL.
func newBackendServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// Each attempt is a client span whose context the endpoint gets as
// traceparent, in place of the client's, on both engines; a retried
// request shows both attempts.
func TestProxyAttemptSpans(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		var parents []string
		var mu sync.Mutex
		backend := func(status int) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				parents = append(parents, strings.Join(r.Header["Traceparent"], ","))
				mu.Unlock()
				w.WriteHeader(status)
			})
		}
		pool := newPool(t, Config{Name: "orders", Policy: PolicyFirst, Endpoints: []string{
			newBackendServer(t, backend(http.StatusServiceUnavailable)), newBackendServer(t, backend(http.StatusOK)),
		}}, WithTracerProvider(tp))
		_, url := startProxyOn(t, engine, ProxyConfig{}, []*Pool{pool})
		req, _ := http.NewRequest("GET", url+"/", nil)
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		spans := exp.GetSpans()
		if len(spans) != 2 || len(parents) != 2 {
			t.Fatalf("%d spans, traceparents %q", len(spans), parents)
		}
		for i, s := range spans {
			want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
			if parents[i] != want || s.SpanKind != trace.SpanKindClient {
				t.Errorf("attempt %d: endpoint got %q, span %s", i, parents[i], want)
			}
		}
	})
}

// The upstream's answer headers reach the client as they were sent:
// repeated ones (cookies of one name on two paths included) all there, in
// order, and no Content-Type where the upstream sent none.
func TestProxyAnswerHeadersAsSent(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{}, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Set-Cookie", "a=1; Path=/x")
			w.Header().Add("Set-Cookie", "a=2; Path=/y")
			w.Header().Add("Set-Cookie", "b=3")
			w.Header().Add("X-Multi", "1")
			w.Header().Add("X-Multi", "2")
			w.WriteHeader(http.StatusAccepted)
		}))
		resp, err := http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := strings.Join(resp.Header["Set-Cookie"], " | "); got != "a=1; Path=/x | a=2; Path=/y | b=3" {
			t.Errorf("Set-Cookie %q", got)
		}
		if got := strings.Join(resp.Header["X-Multi"], ","); got != "1,2" {
			t.Errorf("X-Multi %q", got)
		}
		if ct, ok := resp.Header["Content-Type"]; ok || resp.StatusCode != http.StatusAccepted {
			t.Errorf("%d, Content-Type %q", resp.StatusCode, ct)
		}
	})
}

// The response timeout bounds the wait for the answer's header, not its
// body: an event stream goes on past it.
func TestProxyStreamOutlivesResponseTimeout(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		url, _, _ := newProxyFrontOn(t, engine, ProxyConfig{ResponseTimeout: 200 * time.Millisecond}, Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-time.After(500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
			_, _ = io.WriteString(w, "data: two\n\n")
		}))
		resp, err := http.Get(url + "/events")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "data: one\n\ndata: two\n\n" {
			t.Fatalf("%q %v", body, err)
		}
	})
}

// An https:// endpoint is reached over TLS on both engines, verified with
// the pool's settings, its connections kept.
func TestProxyHTTPSEndpoint(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		var conns atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Proto+" "+strconv.FormatBool(r.TLS != nil))
		}))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		pool := newPool(t, Config{Endpoints: []string{srv.URL}})
		roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		// The test server's certificate is its own: trust it as the
		// system's roots are trusted for a real endpoint.
		pool.transport.(*h1.Transport).Fallback.TLSClientConfig = &tls.Config{RootCAs: roots}
		pool.fast.TLS.RootCAs = roots
		_, url := startProxyOn(t, engine, ProxyConfig{}, []*Pool{pool})
		for range 3 {
			code, body, err := get(t, http.DefaultClient, url+"/")
			if err != nil || code != 200 || body != "HTTP/1.1 true" {
				t.Fatalf("%d %q %v", code, body, err)
			}
		}
		if n := conns.Load(); n != 1 {
			t.Fatalf("%d connections to the endpoint for 3 requests", n)
		}
	})
}
