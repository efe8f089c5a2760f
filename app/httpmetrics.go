package app

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/tier"
)

// httpMetrics are the server's request metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	shed     prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer, limit func() float64) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem, Name: "requests_total",
			Help: "Requests answered, by method, route and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem, Name: "request_duration_seconds",
			Help:    "Time to answer a request, by method and route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem, Name: "requests_in_flight",
			Help: "Requests being served.",
		}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem, Name: "requests_shed_total",
			Help: "Requests refused with 503 because too many were in flight.",
		}),
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.inFlight, m.shed}
	if limit != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: tier.MetricsNamespace, Subsystem: metricsSubsystem, Name: "in_flight_limit",
			Help: "The current cap on requests in flight (it moves when adaptive).",
		}, limit))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// record counts an answered request and its duration.
func (m *httpMetrics) record(c echo.Context, took time.Duration) {
	method, route := methodLabel(c.Request().Method), c.Path()
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(took.Seconds())
}

// methodLabel keeps the label's values few whatever methods clients send.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
