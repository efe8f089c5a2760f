package obs

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTPMetrics are a tier's request metrics, one family for every tier:
//
//	threetier_<tier>_requests_total{method,route,code}
//	threetier_<tier>_request_duration_seconds{method,route}
//	threetier_<tier>_requests_in_flight
//	threetier_<tier>_response_bytes_total
//
// The series of each (method, route, code) are looked up once and kept:
// finding a child by its label values hashes them and allocates. The map
// of kept series is copied when one is added, so that reading it takes no
// lock, whose counter every core would write.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	bytes    prometheus.Counter

	mu     sync.Mutex // adds series one at a time
	series atomic.Pointer[map[seriesKey]httpSeries]
}

type seriesKey struct {
	method, route string
	code          int
}

type httpSeries struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

// DurationBuckets are the request duration histogram's buckets, from half
// a millisecond (a cached file) to ten seconds.
var DurationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewHTTPMetrics registers the metrics of the tier named subsystem ("app",
// "web") on reg (nowhere when nil). Servers of one tier
// sharing a registry add up in the same series.
func NewHTTPMetrics(subsystem string, reg prometheus.Registerer) (*HTTPMetrics, error) {
	reg = Registerer(reg)
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "requests_total",
			Help: "Requests answered, by method, route and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "request_duration_seconds",
			Help: "Time to answer a request, by method and route.", Buckets: DurationBuckets,
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "requests_in_flight",
			Help: "Requests being answered.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "response_bytes_total",
			Help: "Response body bytes sent.",
		}),
	}
	m.series.Store(&map[seriesKey]httpSeries{})
	var err error
	if m.requests, err = RegisterShared(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = RegisterShared(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = RegisterShared(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.bytes, err = RegisterShared(reg, m.bytes); err != nil {
		return nil, err
	}
	return m, nil
}

// Begin counts a request in flight until End; defer End, so that a
// request that panics leaves too.
func (m *HTTPMetrics) Begin() { m.inFlight.Inc() }

// End counts a request out of flight.
func (m *HTTPMetrics) End() { m.inFlight.Dec() }

// Observe counts an answered request: its route ("unmatched" when empty),
// status code, duration and body size.
func (m *HTTPMetrics) Observe(method, route string, code int, took time.Duration, bytes int64) {
	if route == "" {
		route = "unmatched"
	}
	k := seriesKey{method: methodLabel(method), route: route, code: code}
	s, ok := (*m.series.Load())[k]
	if !ok {
		s = m.add(k)
	}
	s.count.Inc()
	s.duration.Observe(took.Seconds())
	if bytes > 0 {
		m.bytes.Add(float64(bytes))
	}
}

// add keeps k's series, in a copy of the map.
func (m *HTTPMetrics) add(k seriesKey) httpSeries {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.series.Load()
	if s, ok := old[k]; ok {
		return s
	}
	s := httpSeries{
		count:    m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.code)),
		duration: m.duration.WithLabelValues(k.method, k.route),
	}
	series := make(map[seriesKey]httpSeries, len(old)+1)
	maps.Copy(series, old)
	series[k] = s
	m.series.Store(&series)
	return s
}

// methodLabel bounds a method label to the standard methods, whatever
// methods clients send.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
