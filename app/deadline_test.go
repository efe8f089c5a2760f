package app

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sony/gobreaker/v2"

	"github.com/threetier/threetier/tier"
)

// The request's context ends at the earlier of RequestTimeout and the
// caller's tier.HeaderTimeout: the header shortens it, never lengthens it,
// and a malformed one is ignored and logged at debug.
func TestServerTakesTheCallersDeadline(t *testing.T) {
	log, logs := newTestLogger(t)
	for _, c := range []struct {
		name    string
		timeout time.Duration // RequestTimeout
		sent    []string
		want    time.Duration // the handler's budget; 0 for none
	}{
		{"none sent", 2 * time.Second, nil, 2 * time.Second},
		{"shorter", 2 * time.Second, []string{"300ms"}, 300 * time.Millisecond},
		{"longer", 2 * time.Second, []string{"99999999ms"}, 2 * time.Second},
		{"malformed", 2 * time.Second, []string{"soon"}, 2 * time.Second},
		{"huge", 2 * time.Second, []string{strings.Repeat("9", 4000) + "ms"}, 2 * time.Second},
		{"two", 2 * time.Second, []string{"900ms", "400ms"}, 400 * time.Millisecond},
		{"no timeout of its own", -1, []string{"700ms"}, 700 * time.Millisecond},
		{"neither", -1, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, Config{RequestTimeout: c.timeout}, WithLogger(log))
			var budget time.Duration
			s.Echo().GET("/budget", func(ec echo.Context) error {
				if dl, ok := ec.Request().Context().Deadline(); ok {
					budget = time.Until(dl)
				}
				return ec.NoContent(http.StatusNoContent)
			})
			req := httptest.NewRequest(http.MethodGet, "/budget", nil)
			for _, v := range c.sent {
				req.Header.Add(tier.HeaderTimeout, v)
			}
			rec := httptest.NewRecorder()
			s.Echo().ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if budget > c.want || budget < c.want-50*time.Millisecond {
				t.Errorf("the handler had %v; want %v", budget, c.want)
			}
		})
	}
	if !strings.Contains(logs.String(), `"msg":"ignoring the caller's deadline"`) || !strings.Contains(logs.String(), `"level":"DEBUG"`) {
		t.Errorf("no debug line for the malformed header:\n%s", logs)
	}
}

// A handler that fails because the caller's deadline passed answers 503
// within it, naming the budget it had.
func TestServerAnswersWithinTheCallersDeadline(t *testing.T) {
	s := newTestServer(t, Config{RequestTimeout: 10 * time.Second})
	s.Echo().GET("/wait", func(ec echo.Context) error {
		<-ec.Request().Context().Done()
		return ec.Request().Context().Err()
	})
	url := startServer(t, s)
	start := time.Now()
	x := do(t, testClient(t), http.MethodGet, url+"/wait", "", nil, tier.HeaderTimeout, "250ms")
	took := time.Since(start)
	p := checkProblem(t, x, http.StatusServiceUnavailable, "/wait")
	// Its own RequestTimeout is 10s; 50ms more for a busy machine.
	if took > 300*time.Millisecond {
		t.Errorf("answered after %v; want within the caller's 250ms", took)
	}
	if !strings.Contains(p.Detail, "250ms") {
		t.Errorf("detail %q; want it to name the 250ms the request had", p.Detail)
	}
}

// errGone is a dependency that cannot serve at all, as the data tier's
// ErrUnavailable says: its answer is a 503.
var errGone = tier.NewProblem(http.StatusServiceUnavailable, "the database is unavailable")

// An idempotent call whose fallback can answer does not wait for a
// dependency known to be unavailable: refused by the open breaker, or
// failed with a 503, it is answered by the fallback at once, where a call
// without one waits out the breaker and retries. A fallback with nothing
// to answer yet leaves the call to wait and retry as before.
func TestFallbackAnswersAtOnceWhenTheDependencyIsUnavailable(t *testing.T) {
	cfg := GuardConfig{ConsecutiveFailures: 1, OpenFor: 400 * time.Millisecond, MaxOpenFor: 400 * time.Millisecond,
		RideThrough: 3 * time.Second, Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	cached := func(_ context.Context, err error) (string, error) { return "stale", nil }
	empty := func(_ context.Context, err error) (string, error) { return "", err }
	timed := func(t *testing.T, call Call[string], fn func(context.Context) (string, error)) (string, time.Duration, error) {
		t.Helper()
		start := time.Now()
		v, err := call.Do(context.Background(), fn)
		return v, time.Since(start), err
	}

	t.Run("breaker open", func(t *testing.T) {
		g := newTestGuard(t, cfg)
		var calls atomic.Int64
		gone := func(context.Context) (string, error) { calls.Add(1); return "", errGone }
		if _, err := (Call[string]{Guard: g, NotIdempotent: true}).Do(context.Background(), gone); !errors.Is(err, errGone) {
			t.Fatalf("tripping call: %v", err)
		}
		if g.State() != gobreaker.StateOpen {
			t.Fatalf("breaker %s, want open", g.State())
		}
		v, took, err := timed(t, Call[string]{Guard: g, Idempotent: true, Fallback: cached}, gone)
		if v != "stale" || err != nil || took > 50*time.Millisecond {
			t.Errorf("with a fallback: %q, %v after %v; want the fallback's answer at once", v, err, took)
		}
		if calls.Load() != 1 {
			t.Errorf("the dependency was called %d times; want only the tripping call", calls.Load())
		}
		// Nothing cached: the call rides through to the probe, which finds
		// the dependency back.
		back := func(context.Context) (string, error) { calls.Add(1); return "fresh", nil }
		v, took, err = timed(t, Call[string]{Guard: g, Idempotent: true, Fallback: empty}, back)
		if v != "fresh" || err != nil || took < 200*time.Millisecond {
			t.Errorf("with an empty fallback: %q, %v after %v; want a fresh answer after riding through", v, err, took)
		}
	})

	t.Run("failed with a 503", func(t *testing.T) {
		g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 10, Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
		var calls atomic.Int64
		gone := func(context.Context) (string, error) { calls.Add(1); return "", errGone }
		v, took, err := timed(t, Call[string]{Guard: g, Idempotent: true, Fallback: cached}, gone)
		if v != "stale" || err != nil || took > 40*time.Millisecond || calls.Load() != 1 {
			t.Errorf("%q, %v after %v and %d calls; want the fallback's answer after the one failure", v, err, took, calls.Load())
		}
		// Nothing cached: retried, then the fallback is asked again.
		calls.Store(0)
		v, _, err = timed(t, Call[string]{Guard: g, Idempotent: true, Fallback: empty}, gone)
		if !errors.Is(err, errGone) || calls.Load() != 3 {
			t.Errorf("with an empty fallback: %q, %v after %d calls; want the failure after 3 attempts", v, err, calls.Load())
		}
		// Slow or failing otherwise: worth a retry before the fallback.
		calls.Store(0)
		v, _, err = timed(t, Call[string]{Guard: g, Idempotent: true, Fallback: cached}, func(context.Context) (string, error) {
			calls.Add(1)
			return "", errDown
		})
		if v != "stale" || err != nil || calls.Load() != 3 {
			t.Errorf("a failure that is not a 503: %q, %v after %d calls; want 3 attempts, then the fallback", v, err, calls.Load())
		}
	})
}
