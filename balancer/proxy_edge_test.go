package balancer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/tier"
)

// roundTripFunc is an upstream in the process. Like a transport, it sends
// (here: reads) and closes the request body.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return f(r)
}

// edgeFront serves a Proxy over the pool "orders", whose upstream is tr,
// and returns its URL, its registry and its log.
func edgeFront(t *testing.T, tr http.RoundTripper) (string, *prometheus.Registry, *syncbuf.Buffer) {
	t.Helper()
	reg, log := prometheus.NewRegistry(), &syncbuf.Buffer{}
	pool := newPool(t, Config{Name: "orders", Endpoints: []string{"http://upstream.test"}, Retry: RetryConfig{Attempts: 1}}, WithTransport(tr))
	px, err := NewProxy(ProxyConfig{Routes: []Route{{PathPrefix: "/orders/", Pool: "orders"}}, DefaultPool: "-"},
		[]*Pool{pool}, WithRegistry(reg), WithLogger(slog.New(slog.NewTextHandler(log, nil))))
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(px)
	t.Cleanup(front.Close)
	return front.URL, reg, log
}

// upstreamAnswer is a 200 whose body is body.
func upstreamAnswer(r *http.Request, body io.Reader) *http.Response {
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Set-Cookie": {"session=upstream"}},
		Body:          io.NopCloser(body),
		ContentLength: -1, Request: r,
	}
}

// readerFunc is an upstream body that does what it is told.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func wantProxyRequests(t *testing.T, reg *prometheus.Registry, want string) {
	t.Helper()
	want = `# HELP threetier_proxy_requests_total Requests answered, by method, route and status code.
# TYPE threetier_proxy_requests_total counter
` + want + `# HELP threetier_proxy_requests_in_flight Requests being answered.
# TYPE threetier_proxy_requests_in_flight gauge
threetier_proxy_requests_in_flight 0
`
	// The server observes a request after its client has read the answer.
	var err error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = testutil.GatherAndCompare(reg, strings.NewReader(want), "threetier_proxy_requests_total", "threetier_proxy_requests_in_flight"); err == nil {
			return
		}
	}
	t.Fatal(err)
}

func TestProxyPanicBeforeTheAnswerIsAProblem(t *testing.T) {
	url, reg, log := edgeFront(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		panic("boom")
	}))
	wantPanicProblem(t, url, reg, log, "boom")
}

// wantPanicProblem asks url for /orders/7 under request ID req-1 and
// wants the answer to a panic: a 500 problem under that ID, the panic
// (and want, when not empty) logged, the request counted as a 500.
func wantPanicProblem(t *testing.T, url string, reg *prometheus.Registry, log fmt.Stringer, want string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/orders/7", nil)
	req.Header.Set(tier.HeaderRequestID, "req-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p tier.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != tier.ContentTypeProblem ||
		p.Status != 500 || p.RequestID != "req-1" || p.Instance != "/orders/7" || resp.Header.Get(tier.HeaderRequestID) != "req-1" {
		t.Fatalf("%d %v %+v", resp.StatusCode, resp.Header, p)
	}
	if !strings.Contains(log.String(), "panic serving request") || !strings.Contains(log.String(), want) {
		t.Fatalf("panic not logged:\n%s", log)
	}
	wantProxyRequests(t, reg, `threetier_proxy_requests_total{code="500",method="GET",route="orders"} 1
`)
}

func TestProxyPanicDuringTheAnswerAbortsIt(t *testing.T) {
	url, reg, log := edgeFront(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent := false
		return upstreamAnswer(r, readerFunc(func(p []byte) (int, error) {
			if sent {
				panic("boom")
			}
			sent = true
			return copy(p, "partial"), nil
		})), nil
	}))
	resp, err := http.Get(url + "/orders/7")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "partial" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%d %q %v: the client must see the answer cut off", resp.StatusCode, body, err)
	}
	if !strings.Contains(log.String(), "panic serving request") {
		t.Fatalf("panic not logged:\n%s", log)
	}
	wantProxyRequests(t, reg, `threetier_proxy_requests_total{code="200",method="GET",route="orders"} 1
`)
}

// An upstream body that fails mid-way is cut off for the client by
// http.ErrAbortHandler on purpose: no panic is logged, nothing replaces
// the answer.
func TestProxyAbortPassesThroughRecovery(t *testing.T) {
	url, reg, log := edgeFront(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return upstreamAnswer(r, io.MultiReader(strings.NewReader("partial"), readerFunc(func([]byte) (int, error) {
			return 0, errors.New("upstream reset")
		}))), nil
	}))
	resp, err := http.Get(url + "/orders/7")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "partial" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%d %q %v: the client must see the answer cut off", resp.StatusCode, body, err)
	}
	wantProxyRequests(t, reg, `threetier_proxy_requests_total{code="200",method="GET",route="orders"} 1
`)
	if l := log.String(); strings.Contains(l, "panic") || !strings.Contains(l, "upstream body cut off") {
		t.Fatalf("log:\n%s", l)
	}
}

func TestProxyRequestMetrics(t *testing.T) {
	url, reg, _ := edgeFront(t, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/orders/wait" {
			<-r.Context().Done() // the client leaves first
			return nil, r.Context().Err()
		}
		return upstreamAnswer(r, strings.NewReader("ok")), nil
	}))
	for _, path := range []string{"/orders/1", "/orders/2", "/elsewhere"} {
		resp, err := http.Post(url+path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/orders/wait", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request outlived its client")
	}
	wantProxyRequests(t, reg, `threetier_proxy_requests_total{code="200",method="POST",route="orders"} 2
threetier_proxy_requests_total{code="404",method="POST",route="unmatched"} 1
threetier_proxy_requests_total{code="499",method="GET",route="orders"} 1
`)
	if n := testutil.CollectAndCount(reg, "threetier_proxy_request_duration_seconds"); n != 3 {
		t.Fatalf("%d duration series", n)
	}
}

// TestProxyAnswersItsProbes: HealthPath and ReadyPath are answered by the
// node on both engines, never forwarded, and readiness follows Health;
// without them the same paths go upstream like any other.
func TestProxyAnswersItsProbes(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		var upstream atomic.Int32
		backend := newBackendServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			upstream.Add(1)
			w.WriteHeader(http.StatusTeapot)
		}))
		get := func(url string) int {
			t.Helper()
			res, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			return res.StatusCode
		}
		px, url := startProxyOn(t, engine, ProxyConfig{HealthPath: "/healthz", ReadyPath: "/readyz"}, []*Pool{newPool(t, Config{Endpoints: []string{backend}})})
		if got := get(url + "/healthz"); got != http.StatusOK {
			t.Errorf("/healthz: %d", got)
		}
		if got := get(url + "/readyz"); got != http.StatusOK {
			t.Errorf("/readyz: %d", got)
		}
		px.Health().Register("gossip", tier.CheckFunc(func(context.Context) error { return errors.New("alone") }))
		if got := get(url + "/readyz"); got != http.StatusServiceUnavailable {
			t.Errorf("/readyz with a failing check: %d", got)
		}
		if n := upstream.Load(); n != 0 {
			t.Errorf("%d probes forwarded", n)
		}
		if got := get(url + "/other"); got != http.StatusTeapot || upstream.Load() != 1 {
			t.Errorf("/other: %d, %d forwarded", got, upstream.Load())
		}
		_, plain := startProxyOn(t, engine, ProxyConfig{}, []*Pool{newPool(t, Config{Name: "plain", Endpoints: []string{backend}})})
		if got := get(plain + "/readyz"); got != http.StatusTeapot || upstream.Load() != 2 {
			t.Errorf("/readyz without ReadyPath: %d, %d forwarded", got, upstream.Load())
		}
	})
}

func TestProxyProbePathsAreChecked(t *testing.T) {
	err := ProxyConfig{HealthPath: "healthz", ReadyPath: "/ready*"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "HealthPath") || !strings.Contains(err.Error(), "ReadyPath") {
		t.Fatalf("Validate: %v", err)
	}
}
