package app

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/tracing"
	"github.com/threetier/threetier/tier"
)

// Guards is a registry of guards, one per named dependency. The caller
// owns it (there is no global one): make it with NewGuards, add a guard per
// dependency at start-up, and hand it to the server with WithGuards so that
// /readyz reports on every guard. Safe for concurrent use.
type Guards struct {
	log  *slog.Logger
	reg  prometheus.Registerer
	vecs *guardVecs
	// tracer makes each guarded call's span; nil when not tracing.
	tracer trace.Tracer
	err    error // from registering the shared metrics; reported by Add

	mu      sync.RWMutex
	guards  map[string]*Guard
	healths []*tier.Health
}

// NewGuards returns an empty registry. It uses the WithLogger, WithRegistry,
// WithHealth and WithTracerProvider options; guards register on that Health as checkers named
// "guard:<name>".
func NewGuards(opts ...GuardsOption) *Guards {
	return newGuards(buildGuardsOptions(opts))
}

// newGuards builds the registry from the options New and NewGuards share.
func newGuards(o options) *Guards {
	r := &Guards{log: o.log, reg: obs.Registerer(o.reg), tracer: tracing.Tracer(o.tracer), guards: make(map[string]*Guard)}
	r.vecs, r.err = newGuardVecs(r.reg)
	if o.health != nil {
		r.healths = append(r.healths, o.health)
	}
	return r
}

// Add makes the guard of a dependency. Names are unique within a registry.
func (r *Guards) Add(name string, cfg GuardConfig, opts ...GuardOption) (*Guard, error) {
	if name == "" {
		return nil, errors.New("app: guard name is empty")
	}
	if r.err != nil {
		return nil, fmt.Errorf("app: guard metrics: %w", r.err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("app: guard %q: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.guards[name]; dup {
		return nil, fmt.Errorf("app: guard %q already exists", name)
	}
	g := newGuard(name, cfg, r.log, r.vecs.forGuard(name), opts...)
	g.trace = newGuardTrace(r.tracer, name)
	gauges := newStateGauges(g)
	for i, c := range gauges {
		if err := r.reg.Register(c); err != nil {
			for _, done := range gauges[:i] {
				r.reg.Unregister(done)
			}
			return nil, fmt.Errorf("app: guard %q metrics: %w", name, err)
		}
	}
	r.guards[name] = g
	for _, h := range r.healths {
		h.Register(checkName(name), g)
	}
	return g, nil
}

// Get returns the named guard, or nil.
func (r *Guards) Get(name string) *Guard {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.guards[name]
}

// All returns every guard, sorted by name.
func (r *Guards) All() []*Guard {
	r.mu.RLock()
	all := make([]*Guard, 0, len(r.guards))
	for _, g := range r.guards {
		all = append(all, g)
	}
	r.mu.RUnlock()
	slices.SortFunc(all, func(a, b *Guard) int { return strings.Compare(a.name, b.name) })
	return all
}

// GuardStatus is one guard's line on /readyz.
type GuardStatus struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// OpenForMillis is how long an open breaker keeps rejecting.
	OpenForMillis int64 `json:"open_for_ms,omitempty"`
	// InFlight is the number of calls holding a bulkhead slot.
	InFlight int `json:"in_flight"`
	// Calls and Failures are counted over the breaker's current window.
	Calls    uint32 `json:"calls"`
	Failures uint32 `json:"failures"`
	// Unready says that this guard, open, makes the tier unready.
	Unready bool `json:"unready,omitempty"`
}

// Status reports every guard, sorted by name.
func (r *Guards) Status() []GuardStatus {
	all := r.All()
	out := make([]GuardStatus, len(all))
	for i, g := range all {
		state := g.State()
		c := g.Counts()
		out[i] = GuardStatus{
			Name:     g.name,
			State:    state.String(),
			InFlight: g.InFlight(),
			Calls:    c.TotalSuccesses + c.TotalFailures,
			Failures: c.TotalFailures,
			Unready:  g.cfg.UnreadyWhenOpen && state == gobreaker.StateOpen,
		}
		if state == gobreaker.StateOpen {
			out[i].OpenForMillis = g.RetryAfter().Milliseconds()
		}
	}
	return out
}

// watch registers every guard, present and future, on h.
func (r *Guards) watch(h *tier.Health) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.Contains(r.healths, h) {
		return
	}
	r.healths = append(r.healths, h)
	for name, g := range r.guards {
		h.Register(checkName(name), g)
	}
}

func checkName(guard string) string { return "guard:" + guard }
