package tier

import (
	"context"
	"net/http"
	"time"

	"github.com/threetier/threetier/internal/httpx"
)

// A Drainer is a Tier that can stop taking new work before it stops: Drain
// fails its readiness, tells clients it is leaving, and keeps serving until
// its drain delay is over or ctx ends. Run drains every started Drainer at
// once, then stops the tiers in reverse order; Stop drains first if Drain
// was not called.
type Drainer interface {
	Drain(ctx context.Context) error
}

// WithDrain sets how the server leaves: for delay (Limits.DrainDelay)
// before it stops accepting, it keeps serving while h's /readyz fails (h may
// be nil) and its answers say it is leaving, so that balancers, keepalived
// and Kubernetes stop sending first.
func WithDrain(h *Health, delay time.Duration) ServerOption {
	return func(s *HTTPServer) { s.health, s.drainDelay = h, delay }
}

// Drain starts draining: /readyz fails, every answer carries
// Threetier-Draining: 1 (a balancer pool that sees it takes the endpoint
// out at once) and Connection: close (a GOAWAY on HTTP/2), and the server
// keeps serving until the drain delay is over or ctx ends. It returns at
// once when the server is not started or the delay is zero, and drains
// only once.
func (s *HTTPServer) Drain(ctx context.Context) error {
	s.mu.Lock()
	started := s.served != nil
	s.mu.Unlock()
	if !started || !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	if s.health != nil {
		s.health.drain()
	}
	if s.drainDelay <= 0 {
		return nil
	}
	s.log.Info("draining", "server", s.name, "addr", s.Addr(), "for", s.drainDelay)
	t := time.NewTimer(s.drainDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Draining reports whether Drain was called.
func (s *HTTPServer) Draining() bool { return s.draining.Load() }

// drainAware marks the answers of a draining server; serving costs one
// atomic load otherwise.
func (s *HTTPServer) drainAware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			markDraining(w.Header().Set)
		}
		next.ServeHTTP(w, r)
	})
}

// markDraining sets, through set, the headers of a draining server's
// answer: the mark balancers look for, and the end of the connection,
// whose client should go elsewhere for its next request.
func markDraining(set func(name, value string)) {
	set(httpx.DrainingHeader, "1")
	set("Connection", "close")
}
