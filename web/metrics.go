package web

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

const metricsSubsystem = "web"

// filesMetrics are the file handler's cache and compression counters.
type filesMetrics struct {
	hits, misses                    prometheus.Counter
	bytes                           prometheus.Gauge
	compressions, compressesSkipped prometheus.Counter
	compressedBytes                 prometheus.Gauge
}

// newFilesMetrics registers the cache metrics; handlers sharing a registry
// share (and add up in) the same series.
func newFilesMetrics(reg prometheus.Registerer) (*filesMetrics, error) {
	reg = obs.Registerer(reg)
	m := &filesMetrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "file_cache_hits_total", Help: "File lookups answered from the in-memory cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "file_cache_misses_total", Help: "File lookups that went to disk.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "file_cache_bytes", Help: "Bytes held by the in-memory file cache.",
		}),
		compressions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "compressions_total", Help: "Compressions made: forms kept in memory once made, and responses compressed while sent.",
		}),
		compressesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "compressions_skipped_total", Help: "Responses sent uncompressed because every compression slot was taken.",
		}),
		compressedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "compressed_cache_bytes", Help: "Bytes held by the in-memory cache of compressed forms.",
		}),
	}
	var err error
	if m.hits, err = obs.RegisterShared(reg, m.hits); err != nil {
		return nil, err
	}
	if m.misses, err = obs.RegisterShared(reg, m.misses); err != nil {
		return nil, err
	}
	if m.bytes, err = obs.RegisterShared(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.compressions, err = obs.RegisterShared(reg, m.compressions); err != nil {
		return nil, err
	}
	if m.compressesSkipped, err = obs.RegisterShared(reg, m.compressesSkipped); err != nil {
		return nil, err
	}
	if m.compressedBytes, err = obs.RegisterShared(reg, m.compressedBytes); err != nil {
		return nil, err
	}
	return m, nil
}

// serverMetrics are the web tier's request metrics.
type serverMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    prometheus.Counter
	inFlight prometheus.Gauge

	// The series of the usual requests, looked up once: finding a child
	// by its label values hashes them, on every request otherwise.
	usual    [2][len(usualCodes)]prometheus.Counter // [GET, HEAD][code]
	usualDur [2]prometheus.Observer
}

// usualCodes are the statuses of nearly every static file response.
var usualCodes = [...]int{200, 206, 304, 404}

// request counts one answered request and its duration.
func (m *serverMetrics) request(method string, code int, seconds float64) {
	mi := -1
	switch method {
	case http.MethodGet:
		mi = 0
	case http.MethodHead:
		mi = 1
	}
	if mi >= 0 {
		m.usualDur[mi].Observe(seconds)
		for i, c := range usualCodes {
			if c == code {
				m.usual[mi][i].Inc()
				return
			}
		}
	} else {
		m.duration.WithLabelValues(methodLabel(method)).Observe(seconds)
	}
	m.requests.WithLabelValues(methodLabel(method), strconv.Itoa(code)).Inc()
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	reg = obs.Registerer(reg)
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "requests_total", Help: "Requests answered by the web tier, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "request_duration_seconds", Help: "Time to answer a request, by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "response_bytes_total", Help: "Response body bytes sent.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem,
			Name: "in_flight_requests", Help: "Requests being answered.",
		}),
	}
	var err error
	if m.requests, err = obs.RegisterShared(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = obs.RegisterShared(reg, m.duration); err != nil {
		return nil, err
	}
	if m.bytes, err = obs.RegisterShared(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.inFlight, err = obs.RegisterShared(reg, m.inFlight); err != nil {
		return nil, err
	}
	for mi, method := range []string{http.MethodGet, http.MethodHead} {
		m.usualDur[mi] = m.duration.WithLabelValues(method)
		for i, c := range usualCodes {
			m.usual[mi][i] = m.requests.WithLabelValues(method, strconv.Itoa(c))
		}
	}
	return m, nil
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
