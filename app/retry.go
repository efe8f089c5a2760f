package app

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// backoff returns the wait before retry n (1 for the first retry): a
// random duration in [d/2, d] with d = min(max, base*2^(n-1)). The jitter
// spreads the retries of many callers that failed together.
func backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// budgetBuckets and budgetBucket make the retry budget's window: ten
// one-second buckets.
const (
	budgetBuckets = 10
	budgetBucket  = time.Second
)

// retryBudget caps retries at ratio × calls + minPerSecond × window over a
// rolling ten-second window, as Envoy and Finagle do: when a dependency
// fails broadly, retries stop multiplying its load.
type retryBudget struct {
	ratio        float64
	minPerSecond float64
	buckets      [budgetBuckets]budgetCounts
}

type budgetCounts struct {
	second  atomic.Int64 // the second this bucket counts
	calls   atomic.Int64
	retries atomic.Int64
}

func newRetryBudget(ratio, minPerSecond float64) *retryBudget {
	return &retryBudget{ratio: max(ratio, 0), minPerSecond: max(minPerSecond, 0)}
}

// bucket returns the bucket of second sec, cleared if it last counted an
// older second. Two goroutines racing on a rollover may lose a count; a
// budget does not need to be exact.
func (b *retryBudget) bucket(sec int64) *budgetCounts {
	c := &b.buckets[sec%budgetBuckets]
	if e := c.second.Load(); e != sec && c.second.CompareAndSwap(e, sec) {
		c.calls.Store(0)
		c.retries.Store(0)
	}
	return c
}

// call records a first attempt at now, on the guard's monotonic clock.
func (b *retryBudget) call(now time.Duration) {
	b.bucket(int64(now / budgetBucket)).calls.Add(1)
}

// withdraw reports whether a retry at now fits the budget, and counts it
// when it does.
func (b *retryBudget) withdraw(now time.Duration) bool {
	sec := int64(now / budgetBucket)
	var calls, retries int64
	for i := range b.buckets {
		c := &b.buckets[i]
		if sec-c.second.Load() < budgetBuckets {
			calls += c.calls.Load()
			retries += c.retries.Load()
		}
	}
	allowed := b.ratio*float64(calls) + b.minPerSecond*float64(budgetBuckets)
	if float64(retries)+1 > allowed {
		return false
	}
	b.bucket(sec).retries.Add(1)
	return true
}
