package balancer

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

func TestRetryBudgetHoldsWhenAllFail(t *testing.T) {
	a, b, c := newBackend(t), newBackend(t), newBackend(t)
	for _, be := range []*backend{a, b, c} {
		be.status.Store(http.StatusServiceUnavailable)
	}
	p := newPool(t, Config{
		Endpoints: []string{a.url, b.url, c.url},
		Outlier:   OutlierConfig{Disable: true},
		Retry:     RetryConfig{Attempts: 3, BudgetRatio: 0.1, BudgetMinPerSecond: 5, Backoff: time.Microsecond},
	})
	const requests = 600
	start := time.Now()
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for range jobs {
				code, _, err := get(t, p.Client(), "http://upstream/")
				if err != nil || code != http.StatusServiceUnavailable {
					t.Errorf("got %d %v, want the upstream's 503", code, err)
				}
			}
		})
	}
	for range requests {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	took := time.Since(start)

	attempts := a.hits.Load() + b.hits.Load() + c.hits.Load()
	retries := attempts - requests
	// The ratio of the requests, plus the reserve: 5 a second over the
	// ten-second window, and over each second the run outlasts it by.
	limit := 0.1*requests + 5*(10+math.Ceil(took.Seconds()))
	t.Logf("%d requests made %d retries in %s (limit %.0f; without a budget %d)", requests, retries, took.Round(time.Millisecond), limit, 2*requests)
	if float64(retries) > limit {
		t.Fatalf("%d retries, budget allows %.0f", retries, limit)
	}
	if retries < 0.1*requests {
		t.Fatalf("only %d retries: the budget was not used", retries)
	}
	if n := p.metrics.budgetExhausted.Load(); n == 0 {
		t.Fatal("budget never ran out")
	}
	if n := p.metrics.retries.Load(); int64(n) != retries {
		t.Fatalf("retries metric %d, backends saw %d", n, retries)
	}
}

func TestRetriesGoToAnotherEndpoint(t *testing.T) {
	bad, good := newBackend(t), newBackend(t)
	bad.status.Store(http.StatusBadGateway)
	p := newPool(t, Config{
		Endpoints: []string{bad.url, good.url},
		Outlier:   OutlierConfig{Disable: true},
		Retry:     RetryConfig{BudgetMinPerSecond: 100},
	})
	for range 20 {
		code, body, err := get(t, p.Client(), "http://upstream/")
		if err != nil || code != 200 || body != good.url {
			t.Fatalf("got %d %q %v", code, body, err)
		}
	}
	if n := bad.hits.Load(); n > 20 {
		t.Fatalf("the failing endpoint got %d attempts for 20 requests", n)
	}
}

type opaqueReader struct{ io.Reader } // no GetBody: the pool must keep the body itself

func post(t *testing.T, p *Pool, body string, header http.Header) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://upstream/echo", opaqueReader{strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := p.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(got), nil
}

func TestRetryOnlyWhenSafe(t *testing.T) {
	dead, failing, good := newBackend(t), newBackend(t), newBackend(t)
	dead.kill()
	failing.status.Store(http.StatusServiceUnavailable)
	cfg := Config{Policy: PolicyFirst, Outlier: OutlierConfig{Disable: true}, Retry: RetryConfig{ReplayBytes: 1024}}

	t.Run("refused connection: any method, body replayed", func(t *testing.T) {
		cfg.Endpoints = []string{dead.url, good.url}
		p := newPool(t, cfg)
		code, body, err := post(t, p, "order #1", nil)
		if err != nil || code != 200 || body != "order #1" {
			t.Fatalf("got %d %q %v", code, body, err)
		}
	})
	t.Run("POST answered 503: not retried", func(t *testing.T) {
		cfg.Endpoints = []string{failing.url, good.url}
		p := newPool(t, cfg)
		failing.hits.Store(0)
		good.hits.Store(0)
		code, _, err := post(t, p, "order #2", nil)
		if err != nil || code != 503 || good.hits.Load() != 0 {
			t.Fatalf("got %d %v; good saw %d", code, err, good.hits.Load())
		}
	})
	t.Run("POST with Idempotency-Key: retried", func(t *testing.T) {
		cfg.Endpoints = []string{failing.url, good.url}
		p := newPool(t, cfg)
		code, body, err := post(t, p, "order #3", http.Header{"Idempotency-Key": {"k3"}})
		if err != nil || code != 200 || body != "order #3" {
			t.Fatalf("got %d %q %v", code, body, err)
		}
	})
	t.Run("body over the limit: streamed, not retried", func(t *testing.T) {
		cfg.Endpoints = []string{failing.url, good.url}
		p := newPool(t, cfg)
		big := strings.Repeat("x", 4096)
		code, body, err := post(t, p, big, http.Header{"Idempotency-Key": {"k4"}})
		if err != nil || code != 503 {
			t.Fatalf("got %d %v", code, err)
		}
		_ = body
		cfg.Endpoints = []string{good.url}
		p2 := newPool(t, cfg)
		if code, body, err := post(t, p2, big, nil); err != nil || code != 200 || body != big {
			t.Fatalf("big body not sent whole: %d %d bytes %v", code, len(body), err)
		}
	})
	t.Run("caller cancels: no retry", func(t *testing.T) {
		cfg.Endpoints = []string{failing.url, good.url}
		p := newPool(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://upstream/", nil)
		good.hits.Store(0)
		if _, err := p.RoundTrip(req); err == nil || good.hits.Load() != 0 {
			t.Fatalf("err %v, good saw %d", err, good.hits.Load())
		}
	})
}

// TestInFlightSettlesOnEveryPath: whatever way an attempt ends (retried
// 5xx, refused connection, attempt timeout, caller cancellation, a body
// read half and closed, a body read to its end and never closed), nothing
// stays counted in flight, or least-request and Drain would go wrong.
func TestInFlightSettlesOnEveryPath(t *testing.T) {
	failing, ok, dead, slow := newBackend(t), newBackend(t), newBackend(t), newBackend(t)
	failing.status.Store(http.StatusServiceUnavailable)
	dead.kill()
	p := newPool(t, Config{
		Endpoints: []string{failing.url, ok.url, dead.url, slow.url},
		Outlier:   OutlierConfig{Disable: true},
		Retry:     RetryConfig{Attempts: 4, AttemptTimeout: 50 * time.Millisecond, BudgetMinPerSecond: 1000, Backoff: time.Microsecond},
	})
	c := p.Client()
	for range 20 {
		for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			req, _ := http.NewRequest(method, "http://upstream/", strings.NewReader("x"))
			resp, err := c.Do(req)
			if err == nil {
				var half [1]byte
				_, _ = resp.Body.Read(half[:])
				_ = resp.Body.Close()
			}
		}
		// Read to the end, never closed.
		if resp, err := c.Get("http://upstream/"); err == nil {
			_, _ = io.ReadAll(resp.Body)
		}
		// The caller gives up while the attempt waits.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream/slow", nil)
		if resp, err := c.Do(req); err == nil {
			_ = resp.Body.Close()
		}
		cancel()
	}
	wait.For(t, 5*time.Second, "nothing in flight", func() bool {
		n := p.inflight.Load()
		for _, s := range p.Snapshot() {
			n += s.InFlight
		}
		return n == 0
	})
}

// lateTransport answers only once the attempt's context has ended, with a
// body that cannot be read: a response whose headers came in just as the
// attempt timed out.
type lateTransport struct{ hits atomic.Int64 }

func (lt *lateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	lt.hits.Add(1)
	if r.Body != nil {
		_ = r.Body.Close()
	}
	<-r.Context().Done()
	return &http.Response{StatusCode: http.StatusOK, Body: ctxBody{r.Context()}, Request: r}, nil
}

type ctxBody struct{ ctx context.Context }

func (b ctxBody) Read([]byte) (int, error) { return 0, b.ctx.Err() }
func (ctxBody) Close() error               { return nil }

func TestResponseAfterTheAttemptTimeoutIsATimeout(t *testing.T) {
	lt := &lateTransport{}
	p := newPool(t, Config{
		Endpoints: []string{"http://127.0.0.1:1", "http://127.0.0.1:2"},
		Outlier:   OutlierConfig{Disable: true},
		Retry:     RetryConfig{Attempts: 2, AttemptTimeout: 10 * time.Millisecond, BudgetMinPerSecond: 100},
	}, WithTransport(lt))
	resp, err := p.RoundTrip(httptestRequest(t))
	if err == nil {
		_, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		t.Fatalf("got a %d whose body fails (%v): its attempt had timed out", resp.StatusCode, rerr)
	}
	if !errors.Is(err, ErrAttemptTimeout) || lt.hits.Load() != 2 {
		t.Fatalf("err = %v after %d attempts, want ErrAttemptTimeout after 2", err, lt.hits.Load())
	}
	if n := p.inflight.Load(); n != 0 {
		t.Fatalf("%d in flight after the request ended", n)
	}
}

func httptestRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, "http://upstream/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReplayBodyKeepsBytesAStaleAttemptRead: a retry takes the body over
// while the attempt before it is still blocked reading the client's
// upload. The bytes that read then returns belong to the retry, even past
// the replay limit; past it, no further retry is allowed.
func TestReplayBodyKeepsBytesAStaleAttemptRead(t *testing.T) {
	pr, pw := io.Pipe()
	p := newPool(t, Config{Endpoints: []string{"http://127.0.0.1:1"}, Retry: RetryConfig{ReplayBytes: 10}})
	req, _ := http.NewRequest("PUT", "http://upstream/", pr)
	req.ContentLength = -1
	body := p.prepareBody(req, true, false)
	first, err := body.forAttempt(req, 0)
	if err != nil {
		t.Fatal(err)
	}
	staleErr := make(chan error, 1)
	go func() {
		_, err := first.Read(make([]byte, 64))
		staleErr <- err
	}()
	wait.For(t, 5*time.Second, "the first attempt to block in the client's body", func() bool {
		body.mu.Lock()
		defer body.mu.Unlock()
		return body.reading
	})
	second, err := body.forAttempt(req, 1)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = io.WriteString(pw, "0123456789abcdef") // over the limit of 10, in one read
		_, _ = io.WriteString(pw, "-end")
		_ = pw.Close()
	}()
	if err := <-staleErr; !errors.Is(err, errStaleAttempt) {
		t.Fatalf("stale attempt's read: %v", err)
	}
	got, err := io.ReadAll(second)
	if err != nil || string(got) != "0123456789abcdef-end" {
		t.Fatalf("the retry got %q, %v: bytes lost", got, err)
	}
	if _, err := body.forAttempt(req, 2); !errors.Is(err, errNotReplayable) {
		t.Fatalf("a third attempt past the limit: %v", err)
	}
	body.finish(false)
}
