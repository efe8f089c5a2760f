// Package retry holds what the balancer's and the app tier's retries
// share: a retry budget and a wait that ends with its context.
package retry

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Window is the span, in seconds, over which a Budget counts.
const Window = 10

// A Budget caps retries at a ratio of the requests of the last Window
// seconds, plus a reserve of MinPerSecond × Window so that a quiet
// dependency can still retry (Finagle's retry budget). When a dependency
// fails broadly, retries then stop multiplying its load.
//
// Counting a request is two atomic operations; the lock is taken when a
// one-second slot is reused and when a retry asks. The zero Budget allows
// no retry. A Budget is safe for concurrent use.
type Budget struct {
	ratio, reserve float64

	mu    sync.Mutex
	slots [Window]slot
}

type slot struct {
	sec      atomic.Int64 // the second this slot counts
	requests atomic.Int64
	retries  atomic.Int64
}

// NewBudget returns a budget of ratio × requests plus minPerSecond ×
// Window retries over the window; negative values count as zero.
func NewBudget(ratio, minPerSecond float64) *Budget {
	return &Budget{ratio: max(ratio, 0), reserve: max(minPerSecond, 0) * Window}
}

// slot returns the slot of second sec, cleared if it last counted an older
// second. A count racing with the clearing may land in the new second; a
// budget does not need to be exact.
func (b *Budget) slot(sec int64) *slot {
	s := &b.slots[(sec%Window+Window)%Window]
	if s.sec.Load() != sec {
		b.mu.Lock()
		if s.sec.Load() != sec {
			s.requests.Store(0)
			s.retries.Store(0)
			s.sec.Store(sec)
		}
		b.mu.Unlock()
	}
	return s
}

// Request counts a first attempt made in second sec (of any clock that
// the caller uses for every call).
func (b *Budget) Request(sec int64) { b.slot(sec).requests.Add(1) }

// Withdraw reports whether a retry in second sec fits the budget, and
// counts it when it does.
func (b *Budget) Withdraw(sec int64) bool {
	cur := b.slot(sec)
	b.mu.Lock()
	defer b.mu.Unlock()
	var requests, retries int64
	for i := range b.slots {
		s := &b.slots[i]
		if d := sec - s.sec.Load(); d >= 0 && d < Window {
			requests += s.requests.Load()
			retries += s.retries.Load()
		}
	}
	if float64(retries+1) > b.ratio*float64(requests)+b.reserve {
		return false
	}
	cur.retries.Add(1)
	return true
}

// Sleep waits d or until ctx ends, and reports whether it waited the
// whole of d with ctx still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
