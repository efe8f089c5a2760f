package app

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// blip is a dependency that fails from its start for a while, then works.
type blip struct {
	start time.Time
	down  time.Duration
	calls atomic.Int64
}

func (b *blip) call(context.Context) (int, error) {
	b.calls.Add(1)
	time.Sleep(200 * time.Microsecond) // a round trip's worth
	if time.Since(b.start) < b.down {
		return 0, errDown
	}
	return 1, nil
}

// load starts a call every millisecond, each with its own deadline,
// until the dependency has been back for a while (calls keep arriving
// whatever happens to the earlier ones), and reports how each ended.
func (b *blip) load(deadline time.Duration, call func(context.Context) (int, error)) (results []error, took []time.Duration) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for time.Since(b.start) < b.down+100*time.Millisecond {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			_, err := call(ctx)
			mu.Lock()
			results, took = append(results, err), append(took, time.Since(start))
			mu.Unlock()
		})
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	return results, took
}

// A dependency down for 300 ms under steady calls: every idempotent call
// made during it succeeds within its deadline, by waiting out the open
// breaker rather than failing, and the waits spend no retry budget: only
// the calls that met the failing dependency retried. The hundreds of
// calls the closing breaker releases at once are more than the bulkhead
// holds: they queue for its slots.
func TestIdempotentCallsRideThroughAShortOutage(t *testing.T) {
	const deadline = 2 * time.Second
	g := newTestGuard(t, GuardConfig{MaxConcurrent: 32})
	b := &blip{start: time.Now(), down: 300 * time.Millisecond}
	call := Call[int]{Guard: g, Idempotent: true}
	var opened atomic.Int64 // calls that began while the breaker was open
	results, took := b.load(deadline, func(ctx context.Context) (int, error) {
		if g.State() != gobreaker.StateClosed {
			opened.Add(1)
		}
		return call.Do(ctx, b.call)
	})

	failed := 0
	for _, err := range results {
		if err != nil {
			failed++
			t.Errorf("idempotent call during the outage: %v", err)
		}
	}
	retries := testutil.ToFloat64(g.m.retries)
	t.Logf("%d calls, %d failed, %d began with the breaker open; %d dependency calls, %v retries; latency %s",
		len(results), failed, opened.Load(), b.calls.Load(), retries, fmtDurations(took))
	if opened.Load() == 0 {
		t.Fatal("the breaker never opened: the outage did not test anything")
	}
	if slowest := percentile(took, 100); slowest >= deadline {
		t.Errorf("slowest call took %s, past its deadline of %s", slowest, deadline)
	}
	if got := testutil.ToFloat64(g.m.rejected[rejectBudget]); got != 0 {
		t.Errorf("%v calls refused for the retry budget", got)
	}
	// Each retry is a re-attempt of a call that met the failure; the
	// breaker's refusals, waited out, are not.
	if dependencyFailures := b.calls.Load() - int64(len(results)); retries > float64(dependencyFailures) {
		t.Errorf("%v retries for %d failed dependency calls: waiting spent the budget", retries, dependencyFailures)
	}
	if !g.budget.Withdraw(int64(time.Since(g.epoch) / time.Second)) {
		t.Error("the retry budget is exhausted")
	}
}

// The same outage for calls not marked idempotent: each fails at once,
// with the dependency's error or the open breaker, and nothing is sent
// twice.
func TestNonIdempotentCallsFailFastInAnOutage(t *testing.T) {
	g := newTestGuard(t, GuardConfig{})
	b := &blip{start: time.Now(), down: 300 * time.Millisecond}
	results, took := b.load(2*time.Second, func(ctx context.Context) (int, error) { return Do(ctx, g, b.call) })
	refused, failed := 0, 0
	for _, err := range results {
		switch {
		case errors.Is(err, ErrBreakerOpen):
			refused++
		case errors.Is(err, errDown):
			failed++
		case err != nil:
			t.Errorf("unexpected error %v", err)
		}
	}
	t.Logf("%d calls: %d failed, %d refused by the breaker; %d dependency calls; latency %s",
		len(results), failed, refused, b.calls.Load(), fmtDurations(took))
	if refused == 0 || failed == 0 {
		t.Fatalf("%d refused, %d failed: want both in an outage", refused, failed)
	}
	if b.calls.Load() > int64(len(results)) {
		t.Errorf("%d dependency calls for %d calls: a call that is not idempotent was retried", b.calls.Load(), len(results))
	}
	if p99 := percentile(took, 99); p99 > 100*time.Millisecond {
		t.Errorf("p99 latency %s: calls that are not idempotent must not wait", p99)
	}
	if testutil.ToFloat64(g.m.retries) != 0 {
		t.Error("retries counted for calls that are not idempotent")
	}
}

// Each failed probe doubles the open period up to MaxOpenFor; closing
// starts over. The guard holds calls back for the whole period, past the
// breaker's own (first) timeout, and RetryAfter says how long is left.
func TestOpenPeriodBacksOffAndResets(t *testing.T) {
	const openFor, maxOpenFor = 30 * time.Millisecond, 300 * time.Millisecond
	var mu sync.Mutex
	var periods []time.Duration
	var g *Guard
	g = newTestGuard(t, GuardConfig{ConsecutiveFailures: 1, OpenFor: openFor, MaxOpenFor: maxOpenFor},
		WithStateChange(func(_ string, _, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				mu.Lock()
				periods = append(periods, time.Until(time.Unix(0, g.openUntil.Load())))
				mu.Unlock()
			}
		}))
	ctx := context.Background()
	var calls atomic.Int64
	probe := func(ok bool) {
		t.Helper()
		wait.For(t, 5*time.Second, "the breaker to let a probe through", func() bool { return g.State() != gobreaker.StateOpen })
		if ok {
			_, _ = Do(ctx, g, func(context.Context) (int, error) { return 1, nil })
		} else {
			_, _ = Do(ctx, g, failing(&calls))
		}
	}
	_, _ = Do(ctx, g, failing(&calls)) // trips
	for range 4 {
		probe(false)
	}

	// Past the breaker's own timeout, in the capped period: still held.
	opened := time.Now()
	wait.For(t, 5*time.Second, "the first period's length to pass", func() bool { return time.Since(opened) > 2*openFor })
	before := calls.Load()
	_, err := Do(ctx, g, failing(&calls))
	var ge *GuardError
	if !errors.As(err, &ge) || !errors.Is(err, ErrBreakerOpen) || calls.Load() != before {
		t.Fatalf("call in the backed-off period: %v, %d dependency calls; want a refusal", err, calls.Load()-before)
	}
	if ge.RetryAfter <= 0 || ge.RetryAfter > maxOpenFor-2*openFor {
		t.Errorf("RetryAfter %s, want what is left of the %s period", ge.RetryAfter, maxOpenFor)
	}
	if ra := g.RetryAfter(); ra <= 0 || ra > ge.RetryAfter {
		t.Errorf("Guard.RetryAfter %s, want at most %s", ra, ge.RetryAfter)
	}

	probe(true) // closes
	if s := g.State(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s after a good probe, want closed", s)
	}
	_, _ = Do(ctx, g, failing(&calls)) // trips again

	mu.Lock()
	defer mu.Unlock()
	want := []time.Duration{openFor, 2 * openFor, 4 * openFor, 8 * openFor, maxOpenFor, openFor}
	if len(periods) != len(want) {
		t.Fatalf("open periods %v, want %v", periods, want)
	}
	for i, d := range periods {
		if d > want[i] || d < want[i]-10*time.Millisecond {
			t.Errorf("open period %d lasts %s, want %s", i+1, d, want[i])
		}
	}
}

// An idempotent call waits only when the breaker can let it through in
// time: with the next probe beyond its ride-through allowance it fails at
// once, and the tier answers 503 problem+json with a Retry-After that is
// the breaker's remaining open period, rounded up to whole seconds.
func TestRefusedCallAnswers503WithTheBreakersRetryAfter(t *testing.T) {
	log, _ := newTestLogger(t)
	reg := tier.NewRegistry()
	guards := NewGuards(WithRegistry(reg), WithLogger(log))
	g, err := guards.Add("db", GuardConfig{ConsecutiveFailures: 1, OpenFor: 2500 * time.Millisecond, RideThrough: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{}, WithLogger(log), WithRegistry(reg), WithGuards(guards))
	read := Call[int]{Guard: g, Idempotent: true}
	s.Echo().GET("/read", func(c echo.Context) error {
		_, err := read.Do(c.Request().Context(), func(context.Context) (int, error) { return 1, nil })
		return err
	})
	url := startServer(t, s)
	var calls atomic.Int64
	_, _ = Do(context.Background(), g, failing(&calls))

	start := time.Now()
	x := do(t, http.DefaultClient, "GET", url+"/read", "", nil)
	took := time.Since(start)
	checkProblem(t, x, http.StatusServiceUnavailable, "/read")
	if ra := x.header.Get("Retry-After"); ra != "3" && ra != "2" {
		t.Errorf("Retry-After %q, want the breaker's 2.5s open period rounded up", ra)
	}
	if took > 750*time.Millisecond {
		t.Errorf("refused after %s: a call that cannot be let through in time must not wait", took)
	}
}

// Served by the app server, a call's idempotence follows the request's
// method: the guarded read of a GET, HEAD or OPTIONS waits out the open
// breaker and answers, while the call of a POST, and a GET's call that
// its Call marks NotIdempotent, are refused at once without reaching the
// dependency.
func TestSafeMethodsCallsRideThroughByDefault(t *testing.T) {
	log, _ := newTestLogger(t)
	reg := tier.NewRegistry()
	guards := NewGuards(WithRegistry(reg), WithLogger(log))
	g, err := guards.Add("db", GuardConfig{ConsecutiveFailures: 1})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	dependency := func(context.Context) (int, error) { calls.Add(1); return 1, nil }
	s := newTestServer(t, Config{}, WithLogger(log), WithRegistry(reg), WithGuards(guards))
	e := s.Echo()
	answer := func(c echo.Context, err error) error {
		if err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
	read := func(c echo.Context) error {
		_, err := Do(c.Request().Context(), g, dependency)
		return answer(c, err)
	}
	e.Match([]string{http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPost, http.MethodDelete}, "/do", read)
	countView := Call[int]{Guard: g, NotIdempotent: true}
	e.GET("/once", func(c echo.Context) error {
		_, err := countView.Do(c.Request().Context(), dependency)
		return answer(c, err)
	})
	url := startServer(t, s)
	client := testClient(t)

	for _, tc := range []struct {
		method, path string
		rides        bool
	}{
		{http.MethodGet, "/do", true},
		{http.MethodHead, "/do", true},
		{http.MethodOptions, "/do", true},
		{http.MethodPost, "/do", false},
		{http.MethodDelete, "/do", false},
		{http.MethodGet, "/once", false},
	} {
		var failures atomic.Int64
		_, _ = Do(context.Background(), g, failing(&failures)) // trips
		if g.State() != gobreaker.StateOpen {
			t.Fatalf("breaker %s after a failure, want open", g.State())
		}
		before := calls.Load()
		start := time.Now()
		x := do(t, client, tc.method, url+tc.path, "", nil)
		took := time.Since(start)
		switch {
		case tc.rides && (x.status != http.StatusNoContent || calls.Load() != before+1):
			t.Errorf("%s %s with the breaker open: %d after %s, %d dependency calls; want 204 once the breaker lets it through",
				tc.method, tc.path, x.status, took, calls.Load()-before)
		// Had it waited, the breaker would have let it through to the
		// dependency, which works.
		case !tc.rides && (x.status != http.StatusServiceUnavailable || calls.Load() != before):
			t.Errorf("%s %s with the breaker open: %d after %s, %d dependency calls; want 503 at once, nothing sent",
				tc.method, tc.path, x.status, took, calls.Load()-before)
		}
		wait.For(t, 5*time.Second, "the breaker to leave its open period", func() bool { return g.State() != gobreaker.StateOpen })
		if _, err := Do(context.Background(), g, dependency); err != nil { // closes
			t.Fatal(err)
		}
	}
}
