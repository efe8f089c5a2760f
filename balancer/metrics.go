package balancer

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
)

// metrics exports the pool as threetier_balancer_* metrics. Per-endpoint
// figures are read from the endpoints' own counters when scraped, so the
// request path pays nothing for them.
type metrics struct {
	pool *Pool

	noEndpoint      atomic.Uint64
	retries         atomic.Uint64
	budgetExhausted atomic.Uint64
	duration        prometheus.Histogram

	requests, failures, ejections, inflight, weight, up, ewma *prometheus.Desc
	noEndpointD, retriesD, budgetD                            *prometheus.Desc
}

func newMetrics(p *Pool, reg prometheus.Registerer) (*metrics, error) {
	name := func(n string) string { return prometheus.BuildFQName(obs.Namespace, "balancer", n) }
	pool := prometheus.Labels{"pool": p.cfg.Name}
	ep := []string{"endpoint"}
	m := &metrics{
		pool: p,
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: name("attempt_duration_seconds"), ConstLabels: pool,
			Help:    "Time from sending an attempt to an endpoint to its response headers (or error).",
			Buckets: obs.DurationBuckets,
		}),
		requests:    prometheus.NewDesc(name("endpoint_requests_total"), "Attempts sent to the endpoint.", ep, pool),
		failures:    prometheus.NewDesc(name("endpoint_failures_total"), "Attempts that failed: transport error or 5xx.", ep, pool),
		ejections:   prometheus.NewDesc(name("endpoint_ejections_total"), "Times outlier detection ejected the endpoint.", ep, pool),
		inflight:    prometheus.NewDesc(name("endpoint_in_flight"), "Requests in flight to the endpoint.", ep, pool),
		weight:      prometheus.NewDesc(name("endpoint_weight"), "Configured weight of the endpoint.", ep, pool),
		up:          prometheus.NewDesc(name("endpoint_up"), "1 when the endpoint takes new requests on its own merit, else 0.", ep, pool),
		ewma:        prometheus.NewDesc(name("endpoint_latency_ewma_seconds"), "Peak EWMA of the endpoint's response time.", ep, pool),
		noEndpointD: prometheus.NewDesc(name("no_endpoint_total"), "Requests refused because no endpoint could take them.", nil, pool),
		retriesD:    prometheus.NewDesc(name("retries_total"), "Attempts made after the first one of a request.", nil, pool),
		budgetD:     prometheus.NewDesc(name("retry_budget_exhausted_total"), "Retries not made because the retry budget was spent.", nil, pool),
	}
	if err := obs.Registerer(reg).Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observe(d time.Duration) { m.duration.Observe(d.Seconds()) }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.duration.Describe(ch)
	for _, d := range []*prometheus.Desc{m.requests, m.failures, m.ejections, m.inflight, m.weight, m.up, m.ewma, m.noEndpointD, m.retriesD, m.budgetD} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.noEndpointD, prometheus.CounterValue, float64(m.noEndpoint.Load()))
	ch <- prometheus.MustNewConstMetric(m.retriesD, prometheus.CounterValue, float64(m.retries.Load()))
	ch <- prometheus.MustNewConstMetric(m.budgetD, prometheus.CounterValue, float64(m.budgetExhausted.Load()))
	for _, s := range m.pool.Snapshot() {
		up := 0.0
		if s.State == StateUp || s.State == StateSlowStart {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(m.requests, prometheus.CounterValue, float64(s.Requests), s.URL)
		ch <- prometheus.MustNewConstMetric(m.failures, prometheus.CounterValue, float64(s.Failures), s.URL)
		ch <- prometheus.MustNewConstMetric(m.ejections, prometheus.CounterValue, float64(s.Ejections), s.URL)
		ch <- prometheus.MustNewConstMetric(m.inflight, prometheus.GaugeValue, float64(s.InFlight), s.URL)
		ch <- prometheus.MustNewConstMetric(m.weight, prometheus.GaugeValue, float64(s.Weight), s.URL)
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, s.URL)
		ch <- prometheus.MustNewConstMetric(m.ewma, prometheus.GaugeValue, s.EWMA.Seconds(), s.URL)
	}
}
