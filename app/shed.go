package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/internal/obs"
)

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
