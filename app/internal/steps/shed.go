package steps

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threetier/threetier/tier"
)

// Shedder caps the requests served at once. Past the cap a request is
// refused at once with 503 and Retry-After instead of queueing: a queue
// only adds latency to every request once the tier is saturated, while a
// refusal lets the balancer try another instance.
//
// With a latency target the cap adapts (AIMD, as in Netflix's
// concurrency-limits): it shrinks by a tenth, at most once per target
// period, while admitted requests take longer than the target, and grows
// by one while they are faster and the cap is at least half used.
type Shedder struct {
	max, min   int64
	target     time.Duration // zero: fixed cap
	retryAfter time.Duration

	limit    atomic.Int64
	inFlight atomic.Int64

	mu           sync.Mutex
	lastDecrease time.Time

	shed func() // counts a refusal
}

// NewShedder returns a shedder that admits up to maxInFlight requests at
// once, refusing the rest with retryAfter. With a positive latency target
// the cap adapts, down to minInFlight. onShed, when not nil, is called for
// every refusal.
func NewShedder(maxInFlight, minInFlight int, latency, retryAfter time.Duration, onShed func()) *Shedder {
	if onShed == nil {
		onShed = func() {}
	}
	s := &Shedder{
		max: int64(maxInFlight), min: int64(max(min(minInFlight, maxInFlight), 1)),
		target: latency, retryAfter: retryAfter, shed: onShed,
	}
	s.limit.Store(s.max)
	return s
}

// Admit takes a place for a request, or reports that there is none. n is
// the number of requests in flight with this one.
func (s *Shedder) Admit() (n int64, ok bool) {
	n = s.inFlight.Add(1)
	if n > s.limit.Load() {
		s.inFlight.Add(-1)
		s.shed()
		return n, false
	}
	return n, true
}

// Refusal is the answer to a shed request.
func (s *Shedder) Refusal() *tier.Problem {
	p := tier.NewProblem(http.StatusServiceUnavailable, fmt.Sprintf("the server is overloaded (%d requests in flight); retry later", s.limit.Load()))
	p.RetryAfter = s.retryAfter
	return p
}

// Release gives back the place of a request admitted as the n-th in
// flight at start.
func (s *Shedder) Release(n int64, start time.Time) {
	if s.target <= 0 {
		s.inFlight.Add(-1)
		return
	}
	s.done(n, time.Since(start))
}

// done releases a request's place and adjusts the adaptive cap. inFlight
// is how many were in flight when it was admitted.
func (s *Shedder) done(inFlight int64, took time.Duration) {
	s.inFlight.Add(-1)
	limit := s.limit.Load()
	if took > s.target {
		now := time.Now()
		s.mu.Lock()
		// A burst of slow requests is one signal, not one per request.
		if now.Sub(s.lastDecrease) >= s.target {
			s.lastDecrease = now
			next := max(s.min, min(limit-1, limit*9/10))
			s.limit.Store(next)
		}
		s.mu.Unlock()
		return
	}
	if limit < s.max && inFlight*2 >= limit {
		s.limit.CompareAndSwap(limit, limit+1)
	}
}

// Limit returns the current cap.
func (s *Shedder) Limit() int64 { return s.limit.Load() }
