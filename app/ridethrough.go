package app

import (
	"context"
	"sync/atomic"
	"time"
)

// rideOut waits, for a call the breaker refused, until the breaker may let
// it through: until it changes state (changed closes), or its open period
// ends, or, half-open with every probe slot taken, for one OpenFor (a
// probe whose caller went away ends without a change). left is what
// remains of the call's ride-through allowance. It returns at once,
// false, when the breaker will not let the call through within left and
// the caller's deadline; otherwise it waits and returns how long.
func (g *Guard) rideOut(ctx context.Context, changed <-chan struct{}, left time.Duration) (time.Duration, bool) {
	if left <= 0 {
		return 0, false
	}
	d := min(g.cfg.OpenFor, left)
	if g.holding() {
		d = g.openLeft()
		if d > left {
			return 0, false // the next probe comes too late for this call
		}
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return 0, false
	}
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	case <-ctx.Done():
		return time.Since(start), false
	}
	return time.Since(start), true
}

// stateSignal lets calls wait for the breaker's next state change. The
// zero value is ready to use.
type stateSignal struct{ ch atomic.Pointer[chan struct{}] }

// next returns a channel that closes at the next state change.
func (s *stateSignal) next() <-chan struct{} {
	if p := s.ch.Load(); p != nil {
		return *p
	}
	ch := make(chan struct{})
	if s.ch.CompareAndSwap(nil, &ch) {
		return ch
	}
	return *s.ch.Load()
}

// broadcast wakes every waiter; the breaker's lock serialises callers.
func (s *stateSignal) broadcast() {
	ch := make(chan struct{})
	if old := s.ch.Swap(&ch); old != nil {
		close(*old)
	}
}
