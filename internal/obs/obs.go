// Package obs holds what the tiers share to observe themselves but users
// never call: defaults for an unset logger or registry, metrics that two
// servers given one registry add up in, and the request metrics every
// HTTP tier has.
package obs

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every metric threetier exports.
const Namespace = "threetier"

// Logger returns l, or a logger that discards everything when l is nil, so
// that options can leave the logger unset.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Registerer returns reg, or a throwaway registry when reg is nil, so that a
// tier built without a registry still works (its metrics go nowhere).
func Registerer(reg prometheus.Registerer) prometheus.Registerer {
	if reg == nil {
		return prometheus.NewRegistry()
	}
	return reg
}

// RegisterShared registers c with reg, or returns the collector of the same
// type already registered there under the same description, so that two
// servers (or two registries of guards) given one Registerer share, and add
// up in, the same series.
func RegisterShared[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// MetricsHandler serves reg in the Prometheus exposition format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
