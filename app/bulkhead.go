package app

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// bulkhead caps the calls in flight to one dependency, so that a slow
// dependency holds at most that many goroutines and connections. Taking a
// free slot is one compare-and-swap; only a call that has to wait uses a
// channel and a timer.
type bulkhead struct {
	max   int64     // zero: no cap (calls are still counted)
	epoch time.Time // of freedAt's clock, which reads only the monotonic one

	inUse   atomic.Int64
	waiting atomic.Int64
	freed   chan struct{} // a slot was released while calls were waiting
	freedAt atomic.Int64  // when, since epoch, in nanoseconds
}

func newBulkhead(maxConcurrent int) *bulkhead {
	return &bulkhead{max: int64(max(maxConcurrent, 0)), epoch: time.Now(), freed: make(chan struct{}, 1)}
}

func (b *bulkhead) now() time.Duration { return time.Since(b.epoch) }

// tryAcquire takes a slot if one is free at once.
func (b *bulkhead) tryAcquire() bool {
	if b.max == 0 {
		b.inUse.Add(1)
		return true
	}
	for {
		n := b.inUse.Load()
		if n >= b.max {
			return false
		}
		if b.inUse.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// wait takes a slot as the calls holding them end, or fails once none
// has ended for stall, when limit has passed, or when ctx ends: a full
// bulkhead that drains (a burst) is waited for, one that is stuck (a
// dependency that stopped answering) refuses its waiters soon.
func (b *bulkhead) wait(ctx context.Context, stall, limit time.Duration) bool {
	if stall <= 0 || limit <= 0 {
		return false
	}
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	begun := b.now()
	end := begun + min(limit, math.MaxInt64-begun)
	t := time.NewTimer(min(stall, limit))
	defer t.Stop()
	for {
		// Registered as waiting before trying: a release after this
		// attempt leaves a signal in freed.
		if b.tryAcquire() {
			// One signal stands for any number of releases: pass it on
			// while slots and waiters remain.
			if b.waiting.Load() > 1 && b.inUse.Load() < b.max {
				b.signal()
			}
			return true
		}
		select {
		case <-b.freed:
		case <-t.C:
			// A slot freed since the wait began moves the stall on.
			now := b.now()
			next := min(max(begun, time.Duration(b.freedAt.Load()))+stall, end)
			if now >= next {
				return false
			}
			t.Reset(next - now)
		case <-ctx.Done():
			return false
		}
	}
}

func (b *bulkhead) release() {
	b.inUse.Add(-1)
	if b.waiting.Load() > 0 {
		b.freedAt.Store(int64(b.now()))
		b.signal()
	}
}

func (b *bulkhead) signal() {
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

// inFlight is the number of calls holding a slot.
func (b *bulkhead) inFlight() int { return int(b.inUse.Load()) }
