package app

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

var errDown = errors.New("dependency down")

func newTestGuard(t testing.TB, cfg GuardConfig, opts ...GuardOption) *Guard {
	t.Helper()
	g, err := NewGuards(WithRegistry(prometheus.NewRegistry())).Add("dep", cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func failing(calls *atomic.Int64) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		calls.Add(1)
		return 0, errDown
	}
}

func TestBreakerTripsRejectsFastProbesAndCloses(t *testing.T) {
	const openFor = time.Second
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 3, FailureRatio: -1, OpenFor: openFor, HalfOpenProbes: 2})
	ctx := context.Background()
	var calls atomic.Int64

	for i := range 3 {
		if g.State() != gobreaker.StateClosed {
			t.Fatalf("breaker %s after %d failures, want closed until 3", g.State(), i)
		}
		if _, err := Do(ctx, g, failing(&calls)); !errors.Is(err, errDown) {
			t.Fatalf("call %d: err = %v, want the dependency's error", i, err)
		}
	}
	if s := g.State(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 3 consecutive failures, want open", s)
	}

	// Open: rejected without calling the dependency, at once. The loop
	// stops well inside the open period, however slow this machine is.
	tripped := time.Now()
	took := make([]time.Duration, 0, 2000)
	for len(took) < cap(took) && time.Since(tripped) < openFor/2 {
		start := time.Now()
		_, err := Do(ctx, g, failing(&calls))
		took = append(took, time.Since(start))
		var ge *GuardError
		if !errors.As(err, &ge) || !errors.Is(err, ErrBreakerOpen) {
			t.Fatalf("open breaker: err = %v, want a GuardError with ErrBreakerOpen", err)
		}
		if ge.RetryAfter <= 0 || ge.RetryAfter > openFor {
			t.Fatalf("RetryAfter = %s, want within the open period", ge.RetryAfter)
		}
	}
	if c := calls.Load(); c != 3 {
		t.Fatalf("dependency called %d times, want 3: an open breaker must not call it", c)
	}
	t.Logf("rejection latency while open: %s", fmtDurations(took))
	if p50 := percentile(took, 50); p50 >= time.Millisecond {
		t.Errorf("median rejection took %s, want under 1ms", p50)
	}
	if got := testutil.ToFloat64(g.m.rejected[rejectOpen]); got != float64(len(took)) {
		t.Errorf("breaker_open rejections = %v, want %d", got, len(took))
	}

	// Half-open after OpenFor: exactly HalfOpenProbes calls go through.
	wait.For(t, 5*time.Second, "half-open", func() bool { return g.State() == gobreaker.StateHalfOpen })
	release := make(chan struct{})
	var probing sync.WaitGroup
	var entered atomic.Int64
	for range 2 {
		probing.Go(func() {
			_, err := Do(ctx, g, func(context.Context) (int, error) {
				entered.Add(1)
				<-release
				return 1, nil
			})
			if err != nil {
				t.Errorf("probe: %v", err)
			}
		})
	}
	wait.For(t, 5*time.Second, "two probes in flight", func() bool { return entered.Load() == 2 })
	if _, err := Do(ctx, g, failing(&calls)); !errors.Is(err, ErrBreakerOpen) {
		t.Fatalf("third call while two probes run: err = %v, want rejection", err)
	}
	close(release)
	probing.Wait()
	if s := g.State(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s after successful probes, want closed", s)
	}
	if v, err := Do(ctx, g, func(context.Context) (int, error) { return 7, nil }); err != nil || v != 7 {
		t.Fatalf("closed breaker: %v, %v", v, err)
	}
}

func TestBreakerReopensWhenProbeFails(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 1, OpenFor: 50 * time.Millisecond})
	var calls atomic.Int64
	_, _ = Do(context.Background(), g, failing(&calls))
	wait.For(t, 5*time.Second, "half-open", func() bool { return g.State() == gobreaker.StateHalfOpen })
	_, _ = Do(context.Background(), g, failing(&calls))
	if s := g.State(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %s after a failed probe, want open", s)
	}
	if got := testutil.ToFloat64(g.m.transitions[gobreaker.StateOpen]); got != 2 {
		t.Errorf("transitions to open = %v, want 2", got)
	}
}

func TestBreakerTripsOnFailureRatio(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: -1, FailureRatio: 0.5, MinCalls: 10, Window: time.Minute})
	ctx := context.Background()
	var calls atomic.Int64
	ok := func(context.Context) (int, error) { return 1, nil }
	// Alternate: never two failures in a row, half of the calls failing.
	for i := range 9 {
		fn := ok
		if i%2 == 1 {
			fn = failing(&calls)
		}
		_, _ = Do(ctx, g, fn)
		if g.State() != gobreaker.StateClosed {
			t.Fatalf("tripped after %d calls, below the minimum volume of 10", i+1)
		}
	}
	_, _ = Do(ctx, g, failing(&calls)) // 10 calls, 5 failures
	if s := g.State(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %s at 5 failures in 10 calls with ratio 0.5, want open", s)
	}
}

func TestSlowCallsCountAsFailures(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 2, SlowCall: 5 * time.Millisecond})
	slow := func(context.Context) (string, error) {
		time.Sleep(20 * time.Millisecond)
		return "late but right", nil
	}
	for i := range 2 {
		v, err := Do(context.Background(), g, slow)
		if err != nil || v != "late but right" {
			t.Fatalf("slow call %d: %q, %v; a slow success still returns its result", i, v, err)
		}
	}
	if s := g.State(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 2 slow calls, want open", s)
	}
	if got := testutil.ToFloat64(g.m.calls[outcomeSlow]); got != 2 {
		t.Errorf("slow outcomes = %v, want 2", got)
	}
}

func TestCallerCancellationDoesNotCount(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 1, Attempts: 5})
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		var calls atomic.Int64
		_, err := Call[int]{Guard: g, Idempotent: true}.Do(ctx, func(ctx context.Context) (int, error) {
			calls.Add(1)
			cancel()
			<-ctx.Done()
			return 0, ctx.Err()
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if calls.Load() != 1 {
			t.Fatalf("%d attempts for a canceled call, want 1: no retry after the caller left", calls.Load())
		}
	}
	if s := g.State(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s after canceled calls, want closed", s)
	}
	if c := g.Counts(); c.TotalFailures != 0 {
		t.Fatalf("canceled calls counted as %d failures", c.TotalFailures)
	}

	// A request already over never reaches the dependency.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var calls atomic.Int64
	if _, err := Do(ctx, g, failing(&calls)); !errors.Is(err, context.Canceled) || calls.Load() != 0 {
		t.Fatalf("dead context: err = %v, calls = %d", err, calls.Load())
	}
}

var errNotFound = errors.New("not found")

func TestNotAFailureDoesNotCount(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 1, Attempts: 3},
		WithIsFailure(func(err error) bool { return !errors.Is(err, errNotFound) }))
	var calls atomic.Int64
	fallbacks := 0
	call := Call[int]{Guard: g, Idempotent: true, Fallback: func(context.Context, error) (int, error) {
		fallbacks++
		return -1, nil
	}}
	for range 10 {
		_, err := call.Do(context.Background(), func(context.Context) (int, error) {
			calls.Add(1)
			return 0, errNotFound
		})
		if !errors.Is(err, errNotFound) {
			t.Fatalf("err = %v, want the not-found error as is", err)
		}
	}
	if s := g.State(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s after not-a-failure errors, want closed", s)
	}
	if calls.Load() != 10 || fallbacks != 0 {
		t.Fatalf("calls = %d (want 10: no retries), fallbacks = %d (want 0)", calls.Load(), fallbacks)
	}

	// The default excuses request errors too.
	if DefaultIsFailure(&ValidationError{}) || DefaultIsFailure(tier.NewProblem(http.StatusNotFound, "")) ||
		!DefaultIsFailure(tier.NewProblem(http.StatusBadGateway, "")) || !DefaultIsFailure(errDown) || DefaultIsFailure(context.Canceled) {
		t.Fatal("DefaultIsFailure misclassifies")
	}
}

func TestCallTimeout(t *testing.T) {
	g := newTestGuard(t, GuardConfig{Timeout: 20 * time.Millisecond, ConsecutiveFailures: 2})
	hang := func(ctx context.Context) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	_, err := Do(context.Background(), g, hang)
	var ge *GuardError
	if !errors.As(err, &ge) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a GuardError with ErrTimeout", err)
	}
	if p := ProblemFor(err); p.Status != http.StatusGatewayTimeout {
		t.Fatalf("timeout maps to %d, want 504", p.Status)
	}
	_, _ = Do(context.Background(), g, hang)
	if s := g.State(); s != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 2 timeouts, want open: timeouts are failures", s)
	}

	// A caller's sooner deadline bounds the call, and the caller gets its
	// own deadline error back; but a dependency that stays silent until
	// then is failing, or a guard without a timeout of its own (or with a
	// longer one than the request's) would never open on a hung
	// dependency.
	for _, timeout := range []time.Duration{time.Minute, -1} {
		g2 := newTestGuard(t, GuardConfig{Timeout: timeout, ConsecutiveFailures: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err = Do(ctx, g2, hang)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
			t.Fatalf("timeout %v, caller deadline: err = %v, want the caller's deadline error", timeout, err)
		}
		if s := g2.State(); s != gobreaker.StateOpen {
			t.Fatalf("timeout %v: breaker %s after the dependency outlasted the caller's deadline, want open", timeout, s)
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	g := newTestGuard(t, GuardConfig{Attempts: 4, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, ConsecutiveFailures: -1, FailureRatio: -1})
	ctx := context.Background()

	var calls atomic.Int64
	_, err := Call[int]{Guard: g, Idempotent: true}.Do(ctx, failing(&calls))
	if !errors.Is(err, errDown) || calls.Load() != 4 {
		t.Fatalf("idempotent: err = %v after %d attempts, want the failure after exactly 4", err, calls.Load())
	}
	calls.Store(0)
	_, _ = Do(ctx, g, failing(&calls))
	if calls.Load() != 1 {
		t.Fatalf("not idempotent: %d attempts, want 1", calls.Load())
	}

	calls.Store(0)
	v, err := Call[int]{Guard: g, Idempotent: true}.Do(ctx, func(context.Context) (int, error) {
		if calls.Add(1) < 3 {
			return 0, errDown
		}
		return 9, nil
	})
	if err != nil || v != 9 || calls.Load() != 3 {
		t.Fatalf("flaky: %d, %v after %d attempts; want 9 on the third", v, err, calls.Load())
	}
	if got := testutil.ToFloat64(g.m.retries); got != 3+2 {
		t.Errorf("retries metric = %v, want 5", got)
	}
}

func TestRetryBudget(t *testing.T) {
	// No budget at all: the first failure is final.
	g := newTestGuard(t, GuardConfig{Attempts: 3, BudgetRatio: -1, BudgetMinPerSecond: -1, Backoff: time.Millisecond, ConsecutiveFailures: -1, FailureRatio: -1})
	var calls atomic.Int64
	_, err := Call[int]{Guard: g, Idempotent: true}.Do(context.Background(), failing(&calls))
	var ge *GuardError
	if !errors.As(err, &ge) || !errors.Is(err, ErrRetryBudget) || !errors.Is(err, errDown) || calls.Load() != 1 {
		t.Fatalf("err = %v after %d attempts, want ErrRetryBudget wrapping the failure after 1", err, calls.Load())
	}
	if p := ProblemFor(err); p.Status != http.StatusServiceUnavailable || p.RetryAfter <= 0 {
		t.Fatalf("spent budget maps to %d (Retry-After %s), want 503 with Retry-After", p.Status, p.RetryAfter)
	}

	// Retries add at most BudgetRatio of the calls.
	g = newTestGuard(t, GuardConfig{Attempts: 3, BudgetRatio: 0.25, BudgetMinPerSecond: -1, Backoff: time.Microsecond, MaxBackoff: time.Microsecond, ConsecutiveFailures: -1, FailureRatio: -1})
	ok := func(context.Context) (int, error) { return 1, nil }
	for range 40 {
		_, _ = Do(context.Background(), g, ok)
	}
	calls.Store(0)
	refused := 0
	const failingCalls = 20
	for range failingCalls {
		_, err := Call[int]{Guard: g, Idempotent: true}.Do(context.Background(), failing(&calls))
		if errors.Is(err, ErrRetryBudget) {
			refused++
		}
	}
	retries := calls.Load() - failingCalls
	t.Logf("60 calls, ratio 0.25: %d retries made, %d calls refused a retry", retries, refused)
	if limit := int64(0.25 * (40 + failingCalls)); retries > limit || retries == 0 || refused == 0 {
		t.Fatalf("%d retries (limit %d), %d refused: the budget must allow some and cap them", retries, limit, refused)
	}
	if got := testutil.ToFloat64(g.m.rejected[rejectBudget]); got != float64(refused) {
		t.Errorf("retry_budget rejections = %v, want %d", got, refused)
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	for n := 1; n <= 8; n++ {
		d := min(time.Millisecond<<(n-1), 20*time.Millisecond)
		for range 50 {
			got := backoff(n, time.Millisecond, 20*time.Millisecond)
			if got < d/2 || got > d {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, got, d/2, d)
			}
		}
	}
}

func TestBulkheadCapsConcurrency(t *testing.T) {
	const limit, callers = 3, 10
	g := newTestGuard(t, GuardConfig{MaxConcurrent: limit})
	release := make(chan struct{})
	var inside, peak atomic.Int64
	var rejected atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			_, err := Do(context.Background(), g, func(context.Context) (int, error) {
				n := inside.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-release
				inside.Add(-1)
				return 1, nil
			})
			if errors.Is(err, ErrBulkheadFull) {
				rejected.Add(1)
			} else if err != nil {
				t.Errorf("call: %v", err)
			}
		})
	}
	wait.For(t, 5*time.Second, "the bulkhead to fill and the rest to be refused", func() bool {
		return inside.Load() == limit && rejected.Load() == callers-limit
	})
	if g.InFlight() != limit {
		t.Errorf("InFlight = %d, want %d", g.InFlight(), limit)
	}
	close(release)
	wg.Wait()
	if p := peak.Load(); p != limit {
		t.Fatalf("peak concurrency %d, want %d", p, limit)
	}
	if g.InFlight() != 0 {
		t.Fatalf("InFlight = %d after all calls, want 0", g.InFlight())
	}
	if p := ProblemFor(&GuardError{Guard: "dep", Err: ErrBulkheadFull}); p.Status != http.StatusServiceUnavailable || p.RetryAfter <= 0 {
		t.Fatalf("full bulkhead maps to %d, want 503 with Retry-After", p.Status)
	}
}

func TestBulkheadBoundedWait(t *testing.T) {
	g := newTestGuard(t, GuardConfig{MaxConcurrent: 1, MaxWait: 5 * time.Second})
	release := make(chan struct{})
	held := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = Do(context.Background(), g, func(context.Context) (int, error) {
			close(held)
			<-release
			return 1, nil
		})
	})
	<-held
	done := make(chan error, 1)
	go func() {
		_, err := Do(context.Background(), g, func(context.Context) (int, error) { return 2, nil })
		done <- err
	}()
	wait.For(t, 5*time.Second, "the second call to wait for a slot", func() bool { return g.bulkhead.waiting.Load() == 1 })
	close(release) // the waiter gets the freed slot
	if err := <-done; err != nil {
		t.Fatalf("waiting call: %v, want it to get the freed slot", err)
	}
	wg.Wait()

	// A wait that ends first is refused.
	g = newTestGuard(t, GuardConfig{MaxConcurrent: 1, MaxWait: 20 * time.Millisecond})
	block := make(chan struct{})
	held = make(chan struct{})
	wg.Go(func() {
		_, _ = Do(context.Background(), g, func(context.Context) (int, error) {
			close(held)
			<-block
			return 1, nil
		})
	})
	<-held
	if _, err := Do(context.Background(), g, func(context.Context) (int, error) { return 2, nil }); !errors.Is(err, ErrBulkheadFull) {
		t.Fatalf("err = %v, want ErrBulkheadFull after the wait", err)
	}
	close(block)
	wg.Wait()
}

func TestFallback(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 1, OpenFor: time.Minute})
	var seen []error
	call := Call[string]{Guard: g, Fallback: func(_ context.Context, err error) (string, error) {
		seen = append(seen, err)
		return "cached", nil
	}}
	var calls atomic.Int64
	down := func(context.Context) (string, error) { calls.Add(1); return "", errDown }
	for range 2 {
		v, err := call.Do(context.Background(), down)
		if err != nil || v != "cached" {
			t.Fatalf("got %q, %v; want the fallback's answer", v, err)
		}
	}
	if len(seen) != 2 || !errors.Is(seen[0], errDown) || !errors.Is(seen[1], ErrBreakerOpen) {
		t.Fatalf("fallback saw %v, want the failure then the open breaker", seen)
	}
	if calls.Load() != 1 {
		t.Fatalf("dependency called %d times, want 1", calls.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := call.Do(ctx, down); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller got %v, want its cancellation, not the fallback", err)
	}
}

func TestPanicInCallReleasesAndCounts(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: 1, MaxConcurrent: 1})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the panic did not reach the caller")
			}
		}()
		_, _ = Do(context.Background(), g, func(context.Context) (int, error) { panic("boom") })
	}()
	if g.InFlight() != 0 {
		t.Fatal("a panicking call kept its bulkhead slot")
	}
	if g.State() != gobreaker.StateOpen {
		t.Fatal("a panic did not count as a failure")
	}
}

func TestGuardsRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := &tier.Health{}
	guards := NewGuards(WithRegistry(reg), WithHealth(h))
	if _, err := guards.Add("", GuardConfig{}); err == nil {
		t.Fatal("empty name accepted")
	}
	db, err := guards.Add("db", GuardConfig{ConsecutiveFailures: 1, UnreadyWhenOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := guards.Add("cache", GuardConfig{ConsecutiveFailures: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := guards.Add("db", GuardConfig{}); err == nil {
		t.Fatal("duplicate name accepted")
	}
	if _, err := guards.Add("bad", GuardConfig{FailureRatio: 2, MaxConcurrent: 4, ReadReserve: 4}); err == nil ||
		!strings.Contains(err.Error(), "FailureRatio") || !strings.Contains(err.Error(), "ReadReserve") {
		t.Fatalf("invalid config: err = %v, want both problems named", err)
	}
	if guards.Get("db") != db || guards.Get("nope") != nil || len(guards.All()) != 2 || guards.All()[0].Name() != "cache" {
		t.Fatal("Get/All do not return the registered guards sorted")
	}
	if r := h.Check(context.Background()); !r.Ready || len(r.Checks) != 2 {
		t.Fatalf("report %+v, want two passing guard checks", r)
	}
	var calls atomic.Int64
	_, _ = Do(context.Background(), db, failing(&calls))
	_, _ = Do(context.Background(), guards.Get("cache"), failing(&calls))
	r := h.Check(context.Background())
	if r.Ready || len(r.Failed()) != 1 || r.Failed()[0] != "guard:db" {
		t.Fatalf("report %+v, want only guard:db failing (cache is not UnreadyWhenOpen)", r)
	}
	st := guards.Status()
	if st[0].Name != "cache" || st[0].State != "open" || st[0].Unready || st[1].State != "open" || !st[1].Unready || st[1].OpenForMillis <= 0 {
		t.Fatalf("status %+v", st)
	}

	// State and in-flight gauges are exported per guard.
	if n, err := testutil.GatherAndCount(reg, "threetier_app_guard_state", "threetier_app_guard_calls_total"); err != nil || n < 4 {
		t.Fatalf("gathered %d series (%v)", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP threetier_app_guard_state Breaker state: 0 closed, 1 half-open, 2 open.
# TYPE threetier_app_guard_state gauge
threetier_app_guard_state{guard="cache"} 2
threetier_app_guard_state{guard="db"} 2
`), "threetier_app_guard_state"); err != nil {
		t.Fatal(err)
	}

	// Two registries can share a Registerer, not a guard name.
	other := NewGuards(WithRegistry(reg))
	if _, err := other.Add("queue", GuardConfig{}); err != nil {
		t.Fatalf("second registry on the same Registerer: %v", err)
	}
	if _, err := other.Add("db", GuardConfig{}); err == nil {
		t.Fatal("the same guard name twice on one Registerer was accepted")
	}
}

// Many callers queue on a small bulkhead: every one gets a slot in turn
// (no wake-up is lost) and never more than the cap run at once.
func TestBulkheadWaitersAllGetThrough(t *testing.T) {
	const limit = 2
	g := newTestGuard(t, GuardConfig{MaxConcurrent: limit, MaxWait: 3 * time.Second})
	var inside, peak, rejected atomic.Int64
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			for range 10 {
				_, err := Do(context.Background(), g, func(context.Context) (int, error) {
					n := inside.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(50 * time.Microsecond)
					inside.Add(-1)
					return 1, nil
				})
				if err != nil {
					rejected.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if rejected.Load() != 0 || peak.Load() > limit || g.InFlight() != 0 {
		t.Fatalf("%d calls refused, peak %d, %d still in flight: want 0, at most %d, 0", rejected.Load(), peak.Load(), g.InFlight(), limit)
	}
}

// Failures older than the window stop counting: the ratio is judged over
// the recent calls only.
func TestFailureRatioWindowRolls(t *testing.T) {
	g := newTestGuard(t, GuardConfig{ConsecutiveFailures: -1, FailureRatio: 0.5, MinCalls: 4, Window: 200 * time.Millisecond})
	ctx := context.Background()
	var calls atomic.Int64
	for range 3 {
		_, _ = Do(ctx, g, failing(&calls)) // below the minimum volume
	}
	wait.For(t, 5*time.Second, "the old failures to leave the window", func() bool {
		_ = g.State() // the breaker rolls its window when asked
		return g.Counts().TotalFailures == 0
	})
	_, _ = Do(ctx, g, failing(&calls))
	for range 3 {
		_, _ = Do(ctx, g, func(context.Context) (int, error) { return 1, nil })
	}
	if s := g.State(); s != gobreaker.StateClosed {
		t.Fatalf("breaker %s: 1 failure in the 4 recent calls must not trip a 0.5 ratio", s)
	}
}

func TestRetryNotTakenSpendsNoBudget(t *testing.T) {
	// One retry in the budget (0.1 a second over ten seconds), and a
	// back-off longer than the callers' deadlines: nobody can wait for the
	// retry, so nobody may spend it.
	g := newTestGuard(t, GuardConfig{Attempts: 2, BudgetRatio: -1, BudgetMinPerSecond: 0.1,
		Backoff: time.Hour, MaxBackoff: time.Hour, ConsecutiveFailures: -1, FailureRatio: -1})
	var calls atomic.Int64
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := Call[int]{Guard: g, Idempotent: true}.Do(ctx, failing(&calls))
		cancel()
		if !errors.Is(err, errDown) || errors.Is(err, ErrRetryBudget) {
			t.Fatalf("err = %v, want the failure itself: the deadline, not the budget, stops the retry", err)
		}
	}
	if got := testutil.ToFloat64(g.m.retries); got != 0 {
		t.Fatalf("retries metric = %v, want 0", got)
	}
	if !g.budget.Withdraw(int64(time.Since(g.epoch) / time.Second)) {
		t.Fatal("the budget's one retry was spent by retries that never happened")
	}
}
