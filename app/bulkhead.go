package app

import (
	"context"
	"sync/atomic"
	"time"
)

// bulkhead caps the calls in flight to one dependency, so that a slow
// dependency holds at most that many goroutines and connections.
type bulkhead struct {
	slots   chan struct{} // nil: no cap
	maxWait time.Duration
	waiting atomic.Int64
}

func newBulkhead(maxConcurrent int, maxWait time.Duration) *bulkhead {
	b := &bulkhead{maxWait: maxWait}
	if maxConcurrent > 0 {
		b.slots = make(chan struct{}, maxConcurrent)
	}
	return b
}

// tryAcquire takes a slot if one is free at once.
func (b *bulkhead) tryAcquire() bool {
	if b.slots == nil {
		return true
	}
	select {
	case b.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// wait takes a slot within maxWait, or fails when the wait or ctx ends
// first.
func (b *bulkhead) wait(ctx context.Context) bool {
	if b.maxWait <= 0 {
		return false
	}
	b.waiting.Add(1)
	defer b.waiting.Add(-1)
	t := time.NewTimer(b.maxWait)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (b *bulkhead) release() {
	if b.slots != nil {
		<-b.slots
	}
}

// inUse is the number of slots taken (0 without a cap).
func (b *bulkhead) inUse() int { return len(b.slots) }
