package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// Make guards with Guards.Add; call through them with Do or Call. A Guard
// is safe for concurrent use.
type Guard struct {
	name      string
	cfg       GuardConfig
	cb        *gobreaker.CircuitBreaker[struct{}]
	bulkhead  *bulkhead
	budget    *retry.Budget
	isFailure func(error) bool
	onChange  func(name string, from, to gobreaker.State)
	log       *slog.Logger
	m         guardMetrics
	// epoch anchors the guard's clock: durations since it read only the
	// monotonic clock, which is cheaper than time.Now on some machines.
	epoch time.Time

	openedAt atomic.Int64 // unix nanoseconds of the breaker's last opening
}

var _ tier.Checker = (*Guard)(nil)

// A GuardOption sets a hook of one guard.
type GuardOption func(*Guard)

// WithIsFailure sets what counts against the dependency. f sees every
// error an attempt returned (the caller's cancellation or deadline and the
// guard's timeout are decided before it); returning false means the
// dependency did its job (a "not found", a constraint violation) and the
// error goes back to the caller without tripping the breaker, retrying or
// falling back.
// The data tier's classification plugs in here:
// app.WithIsFailure(data.IsFailure). The default is DefaultIsFailure.
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
// a broken dependency: a *ValidationError, or a *tier.Problem,
// *echo.HTTPError or *StatusError with a status below 500.
func DefaultIsFailure(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return false
	}
	var p *tier.Problem
	if errors.As(err, &p) {
		return p.Status >= 500
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
	cfg = cfg.withDefaults()
	g := &Guard{
		name:      name,
		cfg:       cfg,
		bulkhead:  newBulkhead(cfg.MaxConcurrent, cfg.MaxWait),
		budget:    retry.NewBudget(cfg.RetryRatio, cfg.MinRetriesPerSecond),
		isFailure: DefaultIsFailure,
		log:       log,
		m:         m,
		epoch:     time.Now(),
	}
	for _, o := range opts {
		o(g)
	}
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

// State returns the breaker's state.
func (g *Guard) State() gobreaker.State { return g.cb.State() }

// Counts returns the breaker's counts over the current window.
func (g *Guard) Counts() gobreaker.Counts { return g.cb.Counts() }

// InFlight returns the number of calls holding a bulkhead slot.
func (g *Guard) InFlight() int { return g.bulkhead.inFlight() }

// RetryAfter returns how long the breaker stays open, or zero when it is
// not open.
func (g *Guard) RetryAfter() time.Duration {
	if g.cb.State() != gobreaker.StateOpen {
		return 0
	}
	return g.openLeft()
}

// openLeft is what remains of the current open period, for a breaker known
// to be open.
func (g *Guard) openLeft() time.Duration {
	left := time.Until(time.Unix(0, g.openedAt.Load()).Add(g.cfg.OpenFor))
	return max(left, 0)
}

// Check makes the guard a tier.Checker: it fails while the breaker is open
// if the guard was configured with UnreadyWhenOpen, and passes otherwise.
func (g *Guard) Check(context.Context) error {
	if g.cfg.UnreadyWhenOpen && g.cb.State() == gobreaker.StateOpen {
		return fmt.Errorf("circuit breaker open, probing again in %s", g.RetryAfter().Round(time.Millisecond))
	}
	return nil
}

func (g *Guard) stateChanged(name string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		g.openedAt.Store(time.Now().UnixNano())
	}
	g.m.transition(to)
	level := slog.LevelInfo
	if to == gobreaker.StateOpen {
		level = slog.LevelWarn
	}
	g.log.Log(context.Background(), level, "circuit breaker "+to.String(), "guard", name, "from", from.String())
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

// run calls fn through the guard, retrying idempotent calls.
func (g *Guard) run(ctx context.Context, idempotent bool, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err // a dead request never reaches the dependency
	}
	now := time.Since(g.epoch)
	g.budget.Request(int64(now / time.Second))
	attempts := 1
	if idempotent {
		attempts = max(g.cfg.MaxAttempts, 1)
	}
	for n := 1; ; n++ {
		again, err := g.attempt(ctx, fn, now)
		if !again || n >= attempts || ctx.Err() != nil {
			return err
		}
		wait := backoff(n, g.cfg.BackoffBase, g.cfg.BackoffMax)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return err // the caller cannot wait for another attempt
		}
		if !g.budget.Withdraw(int64(time.Since(g.epoch) / time.Second)) {
			g.m.rejected[rejectBudget].Inc()
			return &GuardError{Guard: g.name, Err: ErrRetryBudget, Cause: err}
		}
		if !retry.Sleep(ctx, wait) {
			return err
		}
		g.m.retries.Inc()
		now = time.Since(g.epoch)
	}
}

// attempt makes one call; again says whether the failure is worth another.
// now is the guard's clock when the attempt began.
func (g *Guard) attempt(ctx context.Context, fn func(context.Context) error, now time.Duration) (again bool, err error) {
	if !g.bulkhead.tryAcquire() {
		// Waiting for a slot is pointless when the breaker would refuse.
		if g.cb.State() == gobreaker.StateOpen || !g.bulkhead.wait(ctx) {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			g.m.rejected[rejectBulkhead].Inc()
			return false, &GuardError{Guard: g.name, Err: ErrBulkheadFull, RetryAfter: g.RetryAfter()}
		}
		now = time.Since(g.epoch) // the wait is not the dependency's time
	}
	defer g.bulkhead.release()

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
	_, berr := g.cb.Execute(func() (struct{}, error) {
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
	switch berr {
	case gobreaker.ErrOpenState:
		g.m.rejected[rejectOpen].Inc()
		return false, &GuardError{Guard: g.name, Err: ErrBreakerOpen, RetryAfter: g.openLeft()}
	case gobreaker.ErrTooManyRequests: // half-open, every probe slot taken
		g.m.rejected[rejectOpen].Inc()
		return false, &GuardError{Guard: g.name, Err: ErrBreakerOpen}
	}
	switch out {
	case outcomeTimeout:
		if ctx.Err() != nil {
			return false, callErr // the caller's own deadline: its error, as is
		}
		return true, &GuardError{Guard: g.name, Err: ErrTimeout, Cause: callErr}
	case outcomeFailure:
		return true, callErr
	}
	return false, callErr
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

// fallbackFor reports whether err is one a fallback should answer: a
// rejection, a timeout or a failure, and the caller still waiting.
func (g *Guard) fallbackFor(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var ge *GuardError
	return errors.As(err, &ge) || g.isFailure(err)
}
