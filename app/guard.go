package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/sony/gobreaker/v2"

	"github.com/threetier/threetier/internal/retry"
	"github.com/threetier/threetier/tier"
)

// A Guard stands between the tier and one named dependency (a database, a
// service, a queue): every call to it goes through a circuit breaker, a
// per-attempt timeout, a bulkhead, and, for idempotent calls, retries with
// back-off under a retry budget. One slow or dead dependency then costs
// the tier fast, clear errors instead of its goroutines and its latency.
//
// A short outage need not reach the callers. A breaker that trips stays
// open for GuardConfig.OpenFor at first, then probes; each failed probe
// doubles the next open period up to MaxOpenFor, so a dependency that
// blinked is found again within a fraction of a second and one that is
// gone is probed rarely. Waiting out an open breaker, or a half-open one
// whose probe slots are taken, costs the dependency nothing: an idempotent
// call so refused waits for the breaker to let it through (woken by its
// state change, or when the open period ends) for up to RideThrough in
// all and within the caller's deadline, without spending the retry
// budget; only the re-attempts of a failed call spend it. The waiters a
// closing breaker releases together queue for the bulkhead's slots with
// what is left of their allowance. A call that
// cannot be let through in time fails at once with ErrBreakerOpen and the
// time left until the next probe. Calls that are not idempotent neither
// wait nor retry: what they send may have been applied. A call made while
// serving a safe method (GET, HEAD, OPTIONS) is idempotent unless its
// Call says otherwise; any other one only when its Call says so.
//
// In front of a database, a guard made WithCapacity admits as many calls
// as the database's pool serves, and keeps a share of them for reads
// (GuardConfig.ReadReserve): writers that wait for a row lock hold their
// connections, and must not take the ones the reads need. Calls that name
// the rows they lock (Call.Keys) are capped per row
// (GuardConfig.MaxPerKey): one hot row then holds a few of the writes'
// slots, however many clients want it, and only its own calls wait or
// fail.
//
// Every attempt and wait fits the caller's deadline (a request's, which
// the server takes from its caller's tier.HeaderTimeout): an attempt's
// timeout is cut to what is left, no back-off or ride-through begins that
// would end after it, and a wait for a bulkhead slot ends with it. A call
// whose Fallback can answer waits for nothing once the dependency is
// known to be unavailable (see Call.Fallback).
//
// Make guards with Guards.Add; call through them with Do or Call. A Guard
// is safe for concurrent use.
type Guard struct {
	name      string
	cfg       GuardConfig
	cb        *gobreaker.CircuitBreaker[struct{}]
	bulkhead  *bulkhead // the reads', and the writes' too when writes is nil
	writes    *bulkhead // nil: one bulkhead for both (see slotsFor)
	keys      *keyLimit // nil: no cap per key
	capacity  Capacity  // nil: unknown
	budget    *retry.Budget
	isFailure func(error) bool
	onChange  func(name string, from, to gobreaker.State)
	log       *slog.Logger
	m         guardMetrics
	trace     *guardTrace // nil: calls make no spans
	// epoch anchors the guard's clock: durations since it read only the
	// monotonic clock, which is cheaper than time.Now on some machines.
	epoch time.Time

	// openUntil ends the current open period (unix nanoseconds). The
	// breaker's own Timeout is the first, shortest period; for longer
	// ones the guard holds calls back itself until openUntil.
	openUntil atomic.Int64
	// opens counts the openings since the breaker last closed; only
	// stateChanged, under the breaker's lock, touches it.
	opens   int
	changes stateSignal
}

var _ tier.Checker = (*Guard)(nil)

// A GuardOption sets a hook of one guard.
type GuardOption func(*Guard)

// WithIsFailure sets what counts against the dependency. f sees every
// error an attempt returned (the caller's cancellation or deadline and the
// guard's timeout are decided before it); returning false means the
// dependency did its job (a "not found", a constraint violation) and the
// error goes back to the caller without tripping the breaker, retrying or
// falling back. The default, DefaultIsFailure, already follows errors
// that judge themselves (the data tier's): set f for errors that do not.
func WithIsFailure(f func(error) bool) GuardOption {
	return func(g *Guard) {
		if f != nil {
			g.isFailure = f
		}
	}
}

// WithStateChange calls f on every breaker transition (after the guard
// logged it and updated its metrics). f runs while the breaker is locked:
// it must be quick and must not call the guard.
func WithStateChange(f func(guard string, from, to gobreaker.State)) GuardOption {
	return func(g *Guard) { g.onChange = f }
}

// DefaultIsFailure counts every error against the dependency except the
// caller's cancellation and errors that describe a bad request rather than
// a broken dependency. An error that judges itself (a tier.DependencyError:
// the data tier's errors, a *tier.Problem below 500) is taken at its word;
// a *ValidationError, or an *echo.HTTPError or *StatusError with a status
// below 500, is not a failure.
func DefaultIsFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if failure, known := tier.DependencyFailureOf(err); known {
		return failure
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return false
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code >= 500
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status >= 500
	}
	return true
}

// The breaker only needs to know how an attempt ended; these stand for
// the classified outcome.
var (
	errCountFailure = errors.New("failure")
	errCountExclude = errors.New("excluded")
)

func newGuard(name string, cfg GuardConfig, log *slog.Logger, m guardMetrics, opts ...GuardOption) *Guard {
	g := &Guard{
		name:      name,
		isFailure: DefaultIsFailure,
		log:       log,
		m:         m,
		epoch:     time.Now(),
	}
	for _, o := range opts {
		o(g)
	}
	var primary, standbys int
	if g.capacity != nil {
		primary, standbys = g.capacity.Capacity()
	}
	cfg, size := cfg.withDefaults().sized(primary, standbys)
	g.cfg = cfg
	g.bulkhead = newBulkhead(size.reads)
	if size.writes != size.reads {
		g.writes = newBulkhead(size.writes)
	}
	if size.perKey > 0 {
		g.keys = newKeyLimit(size.perKey)
	}
	g.budget = retry.NewBudget(cfg.BudgetRatio, cfg.BudgetMinPerSecond)
	consecutive, ratio, minCalls := cfg.ConsecutiveFailures, cfg.FailureRatio, uint32(max(cfg.MinCalls, 1))
	g.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  uint32(cfg.HalfOpenProbes),
		Interval:     cfg.Window,
		BucketPeriod: cfg.Window / 10,
		Timeout:      cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if consecutive > 0 && c.ConsecutiveFailures >= uint32(consecutive) {
				return true
			}
			judged := c.TotalSuccesses + c.TotalFailures
			return ratio > 0 && judged >= minCalls && float64(c.TotalFailures) >= ratio*float64(judged)
		},
		OnStateChange: g.stateChanged,
		IsExcluded:    func(err error) bool { return err == errCountExclude },
	})
	return g
}

// Name returns the dependency's name.
func (g *Guard) Name() string { return g.name }

// Config returns the guard's configuration, defaults filled in.
func (g *Guard) Config() GuardConfig { return g.cfg }

// State returns the breaker's state: open until the current open period
// ends.
func (g *Guard) State() gobreaker.State {
	if g.holding() {
		return gobreaker.StateOpen
	}
	return g.cb.State()
}

// holding reports whether the current open period still runs.
func (g *Guard) holding() bool { return time.Now().UnixNano() < g.openUntil.Load() }

// Counts returns the breaker's counts over the current window.
func (g *Guard) Counts() gobreaker.Counts { return g.cb.Counts() }

// InFlight returns the number of calls holding a bulkhead slot.
func (g *Guard) InFlight() int {
	n := g.bulkhead.inFlight()
	if g.writes != nil {
		n += g.writes.inFlight()
	}
	return n
}

// waitLimit bounds a call's wait for a slot, of the bulkhead or of its
// keys: one attempt's Timeout, or the caller's deadline alone.
func (g *Guard) waitLimit() time.Duration {
	if g.cfg.Timeout > 0 {
		return g.cfg.Timeout
	}
	return math.MaxInt64
}

// slotsFor is the bulkhead a call takes a slot of. With a read reserve,
// each kind has a bulkhead of its own, rather than one shared with slots
// kept for reads: a burst of reads then cannot refuse writes, and the
// reads that standbys serve take nothing of the writes' share.
func (g *Guard) slotsFor(reads bool) *bulkhead {
	if reads || g.writes == nil {
		return g.bulkhead
	}
	return g.writes
}

// RetryAfter returns how long the breaker stays open (until its next
// probe), or zero when it is not open.
func (g *Guard) RetryAfter() time.Duration {
	if g.State() != gobreaker.StateOpen {
		return 0
	}
	return g.openLeft()
}

// openLeft is what remains of the current open period, for a breaker known
// to be open.
func (g *Guard) openLeft() time.Duration {
	return max(time.Until(time.Unix(0, g.openUntil.Load())), 0)
}

// openPeriod is the length of the n-th open period since the breaker
// last closed: OpenFor·2ⁿ⁻¹, at most MaxOpenFor.
func (g *Guard) openPeriod(n int) time.Duration {
	d := g.cfg.OpenFor
	for i := 1; i < n && d < g.cfg.MaxOpenFor; i++ {
		d *= 2
	}
	return min(d, g.cfg.MaxOpenFor)
}

// Check makes the guard a tier.Checker: it fails while the breaker is open
// if the guard was configured with UnreadyWhenOpen, and passes otherwise.
func (g *Guard) Check(context.Context) error {
	if g.cfg.UnreadyWhenOpen && g.State() == gobreaker.StateOpen {
		return fmt.Errorf("circuit breaker open, probing again in %s", g.RetryAfter().Round(time.Millisecond))
	}
	return nil
}

func (g *Guard) stateChanged(name string, from, to gobreaker.State) {
	level, attrs := slog.LevelInfo, []any{"guard", name, "from", from.String()}
	switch to {
	case gobreaker.StateOpen:
		g.opens++
		d := g.openPeriod(g.opens)
		g.openUntil.Store(time.Now().Add(d).UnixNano())
		level, attrs = slog.LevelWarn, append(attrs, "probing_in", d)
	case gobreaker.StateClosed:
		g.opens = 0
	}
	g.changes.broadcast()
	g.m.transition(to)
	g.log.Log(context.Background(), level, "circuit breaker "+to.String(), attrs...)
	if g.onChange != nil {
		g.onChange(name, from, to)
	}
}

// outcome is how one attempt ended, as the metrics label it.
type outcome uint8

const (
	outcomeSuccess    outcome = iota // answered in time
	outcomeSlow                      // answered, slower than SlowCall: a failure
	outcomeFailure                   // failed
	outcomeTimeout                   // did not answer within Timeout or the caller's deadline: a failure
	outcomeNotFailure                // failed in a way IsFailure excuses
	outcomeCanceled                  // the caller canceled: not counted
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"success", "slow", "failure", "timeout", "not_failure", "canceled"}

// callKind is what a guard needs to know of a call beyond its function.
type callKind struct {
	idempotent bool     // it may be retried, and wait out an open breaker
	reads      bool     // it takes a slot of the reads' bulkhead
	keys       []string // what it contends for (see Call.Keys)
	// early is the call's Fallback, asked at once when the dependency is
	// known to be unavailable (see Call.Fallback); nil without one.
	early func(error) bool
}

// guarded calls fn through the guard; idempotent calls wait out an open
// breaker and retry failures. k.early, when not nil, is the call's
// fallback (see Call.Fallback): asked before waiting out the breaker or
// retrying once the dependency is known to be unavailable, and when it
// answers (true) the call ends with errAnsweredEarly.
func (g *Guard) guarded(ctx context.Context, k callKind, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err // a dead request never reaches the dependency
	}
	release, ok := g.keys.acquire(ctx, k.keys, g.waitLimit())
	if !ok {
		if err := ctx.Err(); err != nil {
			return err
		}
		g.m.rejected[rejectKey].Inc()
		return &GuardError{Guard: g.name, Err: ErrKeyBusy}
	}
	defer release()
	slots := g.slotsFor(k.reads)
	now := time.Since(g.epoch)
	g.budget.Request(int64(now / time.Second))
	attempts, ride := 1, time.Duration(0)
	if k.idempotent {
		attempts, ride = max(g.cfg.Attempts, 1), max(g.cfg.RideThrough, 0)
	}
	var failed error // the failure the next attempt retries
	slotWait := max(g.cfg.MaxWait, 0)
	for n := 1; ; {
		changed := g.changes.next() // before the attempt: no change goes unseen
		next, err := g.attempt(ctx, slots, fn, now, failed, slotWait)
		switch next {
		case stepRefused:
			if k.early != nil && ride > 0 && k.early(err) {
				g.m.rejected[rejectOpen].Inc()
				return errAnsweredEarly
			}
			waited, ok := g.rideOut(ctx, changed, ride)
			if !ok {
				if cerr := ctx.Err(); cerr != nil {
					return cerr // the caller left while the call waited
				}
				g.m.rejected[rejectOpen].Inc()
				return err
			}
			ride -= waited
			// The breaker releases its waiters together: they queue for
			// the bulkhead's slots with what is left of their allowance
			// rather than be refused for arriving at once.
			slotWait = max(g.cfg.MaxWait, ride, 0)
			now = time.Since(g.epoch)
			continue
		case stepDone:
			return err
		}
		if n >= attempts || ctx.Err() != nil {
			return err
		}
		if k.early != nil && unavailable(err) && k.early(err) {
			return errAnsweredEarly
		}
		wait := backoff(n, g.cfg.Backoff, g.cfg.MaxBackoff)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return err // the caller cannot wait for another attempt
		}
		if !retry.Sleep(ctx, wait) {
			return err
		}
		failed = err
		n++
		now = time.Since(g.epoch)
	}
}

// step is what run does after an attempt.
type step uint8

const (
	stepDone    step = iota // return the attempt's result
	stepRetry               // the dependency failed: worth another attempt
	stepRefused             // the breaker refused the call: nothing was sent
)

// attempt makes one call, in a slot of slots; now is the guard's clock
// when the attempt began. retryOf, when not nil, is the failure this
// attempt retries: it spends the retry budget, and only once the breaker
// has let it through. A wait for a bulkhead slot ends when none has
// freed for slotWait (see bulkhead.wait).
func (g *Guard) attempt(ctx context.Context, slots *bulkhead, fn func(context.Context) error, now time.Duration, retryOf error, slotWait time.Duration) (step, error) {
	if g.holding() {
		return stepRefused, &GuardError{Guard: g.name, Err: ErrBreakerOpen, RetryAfter: g.openLeft()}
	}
	if !slots.tryAcquire() {
		// Waiting for a slot is pointless when the breaker would refuse:
		// that is the breaker's refusal (which an idempotent call waits
		// out), not a full bulkhead.
		if g.State() == gobreaker.StateOpen {
			return stepRefused, &GuardError{Guard: g.name, Err: ErrBreakerOpen, RetryAfter: g.openLeft()}
		}
		if !slots.wait(ctx, slotWait, max(g.waitLimit(), slotWait)) {
			if err := ctx.Err(); err != nil {
				return stepDone, err
			}
			g.m.rejected[rejectBulkhead].Inc()
			return stepDone, &GuardError{Guard: g.name, Err: ErrBulkheadFull, RetryAfter: g.RetryAfter()}
		}
		now = time.Since(g.epoch) // the wait is not the dependency's time
	}
	defer slots.release()

	actx := ctx
	if t := g.cfg.Timeout; t > 0 {
		// A caller's deadline that comes sooner already bounds the call.
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > t {
			var cancel context.CancelFunc
			actx, cancel = context.WithTimeout(ctx, t)
			defer cancel()
		}
	}

	var callErr error
	var out outcome
	noBudget := false
	_, berr := g.cb.Execute(func() (struct{}, error) {
		if retryOf != nil {
			if !g.budget.Withdraw(int64(time.Since(g.epoch) / time.Second)) {
				noBudget = true
				return struct{}{}, errCountExclude
			}
			g.m.retries.Inc()
		}
		callErr = fn(actx)
		took := time.Since(g.epoch) - now
		out = g.classify(ctx, actx, callErr, took)
		g.m.observe(out, took)
		switch out {
		case outcomeSuccess, outcomeNotFailure:
			return struct{}{}, nil
		case outcomeCanceled:
			return struct{}{}, errCountExclude
		}
		return struct{}{}, errCountFailure
	})
	switch {
	case berr == gobreaker.ErrOpenState:
		return stepRefused, &GuardError{Guard: g.name, Err: ErrBreakerOpen, RetryAfter: g.openLeft()}
	case berr == gobreaker.ErrTooManyRequests: // half-open, every probe slot taken
		return stepRefused, &GuardError{Guard: g.name, Err: ErrBreakerOpen}
	case noBudget:
		g.m.rejected[rejectBudget].Inc()
		return stepDone, &GuardError{Guard: g.name, Err: ErrRetryBudget, Cause: retryOf}
	}
	switch out {
	case outcomeTimeout:
		if ctx.Err() != nil {
			return stepDone, callErr // the caller's own deadline: its error, as is
		}
		return stepRetry, &GuardError{Guard: g.name, Err: ErrTimeout, Cause: callErr}
	case outcomeFailure:
		return stepRetry, callErr
	}
	return stepDone, callErr
}

func (g *Guard) classify(ctx, actx context.Context, err error, took time.Duration) outcome {
	if err == nil {
		if g.cfg.SlowCall > 0 && took > g.cfg.SlowCall {
			return outcomeSlow
		}
		return outcomeSuccess
	}
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.Canceled) {
			return outcomeCanceled
		}
		// The caller's deadline passed while the dependency was silent:
		// it bounded this attempt in place of the guard's own timeout.
		return outcomeTimeout
	}
	if actx != ctx && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return outcomeTimeout
	}
	if !g.isFailure(err) {
		return outcomeNotFailure
	}
	return outcomeFailure
}

// unavailable reports whether err says that the dependency cannot serve
// at all, rather than slowly: its answer is 503 Service Unavailable, as
// the data tier's ErrUnavailable (the database is down, unreachable, or
// refuses writes on a full disk).
func unavailable(err error) bool {
	p := tier.ProblemOf(err)
	return p != nil && p.Status == http.StatusServiceUnavailable
}

// fallbackFor reports whether err is one a fallback should answer: a
// rejection, a timeout or a failure, and the caller still waiting.
func (g *Guard) fallbackFor(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var ge *GuardError
	return errors.As(err, &ge) || g.isFailure(err)
}
