package app

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/threetier/threetier/app/internal/steps"
	"github.com/threetier/threetier/internal/obs"
)

const metricsSubsystem = steps.MetricsSubsystem

// Reasons a guard rejects a call, as the metrics label them.
const (
	rejectOpen = iota
	rejectBulkhead
	rejectBudget
	rejectKey
	numRejects
)

var rejectNames = [numRejects]string{"breaker_open", "bulkhead_full", "retry_budget", "key_busy"}

// guardVecs are the metric families every guard of a registry shares.
type guardVecs struct {
	reg         prometheus.Registerer
	calls       *prometheus.CounterVec
	rejections  *prometheus.CounterVec
	retries     *prometheus.CounterVec
	fallbacks   *prometheus.CounterVec
	transitions *prometheus.CounterVec
	duration    *prometheus.HistogramVec
}

func newGuardVecs(reg prometheus.Registerer) (*guardVecs, error) {
	v := &guardVecs{reg: reg}
	var err error
	if v.calls, err = obs.RegisterShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_calls_total",
		Help: "Attempts made through a guard, by outcome (success, slow, failure, timeout, not_failure, canceled).",
	}, []string{"guard", "outcome"})); err != nil {
		return nil, err
	}
	if v.rejections, err = obs.RegisterShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_rejections_total",
		Help: "Calls a guard refused, by reason (breaker_open, bulkhead_full, retry_budget, key_busy).",
	}, []string{"guard", "reason"})); err != nil {
		return nil, err
	}
	if v.retries, err = obs.RegisterShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_retries_total",
		Help: "Retries a guard made for idempotent calls.",
	}, []string{"guard"})); err != nil {
		return nil, err
	}
	if v.fallbacks, err = obs.RegisterShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_fallbacks_total",
		Help: "Calls answered by their fallback.",
	}, []string{"guard"})); err != nil {
		return nil, err
	}
	if v.transitions, err = obs.RegisterShared(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_transitions_total",
		Help: "Breaker state changes, by the state entered.",
	}, []string{"guard", "to"})); err != nil {
		return nil, err
	}
	if v.duration, err = obs.RegisterShared(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_call_duration_seconds",
		Help:    "Duration of the attempts made through a guard.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"guard"})); err != nil {
		return nil, err
	}
	return v, nil
}

// guardMetrics are one guard's children of the shared families, resolved
// once so that a call costs a few atomic adds.
type guardMetrics struct {
	calls       [numOutcomes]prometheus.Counter
	rejected    [numRejects]prometheus.Counter
	retries     prometheus.Counter
	fallbacks   prometheus.Counter
	transitions [3]prometheus.Counter // by gobreaker.State
	duration    prometheus.Observer
}

func (v *guardVecs) forGuard(name string) guardMetrics {
	var m guardMetrics
	for i := range m.calls {
		m.calls[i] = v.calls.WithLabelValues(name, outcomeNames[i])
	}
	for i := range m.rejected {
		m.rejected[i] = v.rejections.WithLabelValues(name, rejectNames[i])
	}
	m.retries = v.retries.WithLabelValues(name)
	m.fallbacks = v.fallbacks.WithLabelValues(name)
	for _, s := range []gobreaker.State{gobreaker.StateClosed, gobreaker.StateHalfOpen, gobreaker.StateOpen} {
		m.transitions[s] = v.transitions.WithLabelValues(name, s.String())
	}
	m.duration = v.duration.WithLabelValues(name)
	return m
}

func (m guardMetrics) observe(o outcome, took time.Duration) {
	m.calls[o].Inc()
	m.duration.Observe(took.Seconds())
}

func (m guardMetrics) transition(to gobreaker.State) {
	if int(to) < len(m.transitions) {
		m.transitions[to].Inc()
	}
}

// newStateGauges exports the breaker state (0 closed, 1 half-open, 2 open)
// and the bulkhead's calls in flight, read when scraped.
func newStateGauges(g *Guard) []prometheus.Collector {
	labels := prometheus.Labels{"guard": g.name}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_state",
			Help:        "Breaker state: 0 closed, 1 half-open, 2 open.",
			ConstLabels: labels,
		}, func() float64 { return float64(g.State()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem, Name: "guard_in_flight",
			Help:        "Calls holding a bulkhead slot.",
			ConstLabels: labels,
		}, func() float64 { return float64(g.InFlight()) }),
	}
}
