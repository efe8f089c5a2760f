package app

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// ShedConfig configures the Shed middleware.
type ShedConfig struct {
	// Skipper lets some requests (probes, scrapes) in whatever the load.
	Skipper middleware.Skipper
	// MaxInFlight caps the requests served at once; DefaultMaxInFlight
	// when zero.
	MaxInFlight int
	// Latency, when positive, makes the cap adaptive, down to MinInFlight
	// (DefaultMinInFlight when zero); see Config.ShedLatency.
	Latency     time.Duration
	MinInFlight int
	// RetryAfter is sent with refusals; DefaultShedRetryAfter when zero.
	RetryAfter time.Duration
	// OnShed, when set, is called for every refusal (to count them).
	OnShed func()
}

// DefaultShedConfig caps requests in flight at DefaultMaxInFlight.
var DefaultShedConfig = ShedConfig{Skipper: middleware.DefaultSkipper, MaxInFlight: DefaultMaxInFlight}

// Shed refuses requests past a cap on those in flight with 503 and
// Retry-After, rather than queueing them.
func Shed() echo.MiddlewareFunc { return ShedWithConfig(DefaultShedConfig) }

// ShedWithConfig is Shed with cfg.
func ShedWithConfig(cfg ShedConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	s := newShedder(cfg)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			start := time.Now()
			n, ok := s.admit()
			if !ok {
				return s.refusal()
			}
			defer s.release(n, start)
			return next(c)
		}
	}
}

// shedder caps the requests served at once. Past the cap a request is
// refused at once with 503 and Retry-After instead of queueing: a queue
// only adds latency to every request once the tier is saturated, while a
// refusal lets the balancer try another instance.
//
// With a latency target the cap adapts (AIMD, as in Netflix's
// concurrency-limits): it shrinks by a tenth, at most once per target
// period, while admitted requests take longer than the target, and grows
// by one while they are faster and the cap is at least half used.
type shedder struct {
	max, min   int64
	target     time.Duration // zero: fixed cap
	retryAfter time.Duration

	limit    atomic.Int64
	inFlight atomic.Int64

	mu           sync.Mutex
	lastDecrease time.Time

	shed func() // counts a refusal
}

// newShedder fills cfg's defaults and returns its shedder.
func newShedder(cfg ShedConfig) *shedder {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MinInFlight == 0 {
		cfg.MinInFlight = DefaultMinInFlight
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultShedRetryAfter
	}
	if cfg.OnShed == nil {
		cfg.OnShed = func() {}
	}
	s := &shedder{
		max: int64(cfg.MaxInFlight), min: int64(max(min(cfg.MinInFlight, cfg.MaxInFlight), 1)),
		target: cfg.Latency, retryAfter: cfg.RetryAfter, shed: cfg.OnShed,
	}
	s.limit.Store(s.max)
	return s
}

// admit takes a place for a request, or reports that there is none. n is
// the number of requests in flight with this one.
func (s *shedder) admit() (n int64, ok bool) {
	n = s.inFlight.Add(1)
	if n > s.limit.Load() {
		s.inFlight.Add(-1)
		s.shed()
		return n, false
	}
	return n, true
}

// refusal is the answer to a shed request.
func (s *shedder) refusal() *tier.Problem {
	p := tier.NewProblem(http.StatusServiceUnavailable, fmt.Sprintf("the server is overloaded (%d requests in flight); retry later", s.limit.Load()))
	p.RetryAfter = s.retryAfter
	return p
}

// release gives back the place of a request admitted as the n-th in
// flight at start.
func (s *shedder) release(n int64, start time.Time) {
	if s.target <= 0 {
		s.inFlight.Add(-1)
		return
	}
	s.done(n, time.Since(start))
}

// done releases a request's place and adjusts the adaptive cap. inFlight
// is how many were in flight when it was admitted.
func (s *shedder) done(inFlight int64, took time.Duration) {
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
func (s *shedder) Limit() int64 { return s.limit.Load() }

// shedMetrics registers the server's shedding metrics on reg and returns
// the counter of refusals; limit reads the current cap.
func shedMetrics(reg prometheus.Registerer, limit func() float64) (prometheus.Counter, error) {
	shed := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "requests_shed_total",
		Help: "Requests refused with 503 because too many were in flight.",
	})
	if err := reg.Register(shed); err != nil {
		return nil, err
	}
	return shed, reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "in_flight_limit",
		Help: "The current cap on requests in flight (it moves when adaptive).",
	}, limit))
}
