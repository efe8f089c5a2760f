package app

import (
	"context"
	"sync/atomic"
	"time"
)

// bulkhead caps the calls in flight to one dependency, so that a slow
// dependency holds at most that many goroutines and connections. Taking a
// free slot is one compare-and-swap; only a call that has to wait uses a
// channel and a timer.
type bulkhead struct {
	max int64 // zero: no cap (calls are still counted)

	inUse   atomic.Int64
	waiting atomic.Int64
	freed   chan struct{} // a slot was released while calls were waiting
}

func newBulkhead(maxConcurrent int) *bulkhead {
	return &bulkhead{max: int64(max(maxConcurrent, 0)), freed: make(chan struct{}, 1)}
}

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

// wait takes a slot within d, or fails when d or ctx ends first.
func (b *bulkhead) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return false
	}
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	t := time.NewTimer(d)
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
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (b *bulkhead) release() {
	b.inUse.Add(-1)
	if b.waiting.Load() > 0 {
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
