package balancer

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/threetier/threetier/tier"
)

// State is what an endpoint is doing, as Snapshot reports it.
type State string

// Endpoint states, from the most to the least willing.
const (
	StateUp        State = "up"         // taking its full share
	StateSlowStart State = "slow_start" // taking a share that ramps up
	StateEjected   State = "ejected"    // out after failing requests, until EjectedUntil
	StateDown      State = "down"       // failing its health checks
	StateDraining  State = "draining"   // finishing in-flight requests, taking no new ones
)

// EndpointStatus is one endpoint's state for humans (a stats page) and
// machines (an admin API).
type EndpointStatus struct {
	URL    string `json:"url"`
	State  State  `json:"state"`
	Backup bool   `json:"backup,omitempty"`
	// Serving is true when the endpoint is in the current rotation (which, in
	// panic mode, includes endpoints that are not up).
	Serving bool `json:"serving"`
	Weight  int  `json:"weight"`
	// EffectiveWeight is the weight the policy uses now, slow start
	// included, in Weight units to a tenth: 0.5 is half of a weight of 1.
	EffectiveWeight float64       `json:"effective_weight"`
	InFlight        int64         `json:"in_flight"`
	Requests        uint64        `json:"requests"`
	Failures        uint64        `json:"failures"`
	EWMA            time.Duration `json:"ewma_ns"`
	// SuccessRatio is the recent share of attempts that succeeded, averaged
	// over the EWMA time constant.
	SuccessRatio   float64   `json:"success_ratio"`
	Ejections      uint32    `json:"ejections"`
	EjectedUntil   time.Time `json:"ejected_until,omitzero"`
	LastCheck      time.Time `json:"last_check,omitzero"`
	LastCheckOK    bool      `json:"last_check_ok,omitempty"`
	LastCheckError string    `json:"last_check_error,omitempty"`
}

// Snapshot returns every endpoint's state, in the pool's order.
func (p *Pool) Snapshot() []EndpointStatus {
	now := time.Now().UnixNano()
	t := p.table.Load()
	p.mu.Lock()
	eps := append([]*endpoint(nil), p.eps...)
	p.mu.Unlock()
	serving := make(map[*endpoint]int32, len(t.eps))
	for i, e := range t.eps { // the weights the policy uses now
		serving[e] = t.w[i]
	}
	out := make([]EndpointStatus, 0, len(eps))
	for _, e := range eps {
		s := EndpointStatus{
			URL:          e.key,
			Backup:       e.backup.Load(),
			Weight:       int(e.weight.Load()),
			InFlight:     e.inflight.Load(),
			Requests:     e.requests.Load(),
			Failures:     e.failures.Load(),
			EWMA:         time.Duration(e.ewma(now) * float64(time.Second)),
			SuccessRatio: e.success(now),
			Ejections:    e.ejections.Load(),
		}
		tenths := e.effectiveWeight(now, p.cfg.SlowStart) // in tenths of Weight units
		if w, ok := serving[e]; ok {
			s.Serving, tenths = true, w
		}
		s.EffectiveWeight = float64(tenths) / weightScale
		switch {
		case e.draining.Load():
			s.State = StateDraining
		case e.down.Load():
			s.State = StateDown
		case e.ejected(now):
			s.State = StateEjected
			s.EjectedUntil = time.Unix(0, e.ejectedTo.Load())
		case tenths < int32(s.Weight)*weightScale:
			s.State = StateSlowStart
		default:
			s.State = StateUp
		}
		e.mu.Lock()
		s.LastCheck, s.LastCheckOK, s.LastCheckError = e.checkAt, e.checkOK, e.checkErr
		e.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// Status is the whole pool at a glance: what a stats page or an admin API
// shows.
type Status struct {
	Pool   string `json:"pool"`
	Policy Policy `json:"policy"`
	// Ready is Check's verdict: some endpoint can take traffic on its merit.
	Ready bool `json:"ready"`
	// Panic is true when requests spread over endpoints that are not up,
	// because too few are (see Config.PanicThreshold).
	Panic     bool             `json:"panic"`
	InFlight  int64            `json:"in_flight"`
	Endpoints []EndpointStatus `json:"endpoints"`
}

// Status returns the pool's state and every endpoint's.
func (p *Pool) Status() Status {
	t := p.table.Load()
	return Status{
		Pool:      p.cfg.Name,
		Policy:    p.cfg.Policy,
		Ready:     t.healthy > 0,
		Panic:     t.panic,
		InFlight:  p.inflight.Load(),
		Endpoints: p.Snapshot(),
	}
}

// StatusHandler serves Status as JSON, for an admin listener (it names
// internal addresses: do not expose it to the public).
func (p *Pool) StatusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			tier.ServeProblem(w, r, tier.NewProblem(http.StatusMethodNotAllowed, "use GET"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(p.Status())
	})
}
