package balancer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// proxyMetrics exports a front-door node as threetier_proxy_* metrics,
// labelled with the node's name. Each route's series are bound once, so
// that a request costs a few atomic adds and no label lookup.
type proxyMetrics struct {
	inFlight prometheus.Gauge
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// routeMetrics are one pool's series, bound.
type routeMetrics struct {
	byClass  [6]prometheus.Counter // status / 100; 0 for a client that left
	duration prometheus.Observer
}

func newProxyMetrics(node string, reg prometheus.Registerer) (*proxyMetrics, error) {
	name := func(n string) string { return prometheus.BuildFQName(tier.MetricsNamespace, "proxy", n) }
	labels := prometheus.Labels{"proxy": node}
	m := &proxyMetrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: name("in_flight"), ConstLabels: labels,
			Help: "Requests the front door is forwarding now.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("requests_total"), ConstLabels: labels,
			Help: "Requests forwarded, by pool and status class (1xx-5xx; 'none' when the client left first).",
		}, []string{"pool", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: name("request_duration_seconds"), ConstLabels: labels,
			Help:    "Time from a request's arrival to the end of its response body.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"pool"}),
	}
	// Two nodes of one name on one registry (instances of one service in
	// one process) add up in the same series.
	reg = obs.Registerer(reg)
	var err error
	if m.inFlight, err = obs.RegisterShared(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.requests, err = obs.RegisterShared(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = obs.RegisterShared(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// route binds the series of one pool.
func (m *proxyMetrics) route(pool string) *routeMetrics {
	r := &routeMetrics{duration: m.duration.WithLabelValues(pool)}
	for i, code := range []string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"} {
		r.byClass[i] = m.requests.WithLabelValues(pool, code)
	}
	return r
}

func (r *routeMetrics) observe(status int, d time.Duration) {
	class := status / 100
	if class < 0 || class >= len(r.byClass) {
		class = 0
	}
	r.byClass[class].Inc()
	r.duration.Observe(d.Seconds())
}
