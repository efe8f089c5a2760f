package middleware

import (
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/app/internal/steps"
	"github.com/threetier/threetier/internal/obs"
)

// MetricsConfig configures the Metrics middleware.
type MetricsConfig struct {
	// Skipper leaves some requests uncounted.
	Skipper echomw.Skipper
	// Registerer receives the metrics; when nil they go nowhere.
	Registerer prometheus.Registerer
	// Subsystem is the tier part of the names: threetier_<Subsystem>_...;
	// "app" when empty.
	Subsystem string
}

// DefaultMetricsConfig names the metrics threetier_app_* and registers
// them nowhere: set Registerer.
func DefaultMetricsConfig() MetricsConfig {
	return MetricsConfig{Skipper: echomw.DefaultSkipper, Subsystem: steps.MetricsSubsystem}
}

// Metrics counts requests on reg by method, route and status, and
// measures their duration, under the names every tier uses:
// threetier_app_requests_total{method,route,code},
// threetier_app_request_duration_seconds{method,route},
// threetier_app_requests_in_flight and threetier_app_response_bytes_total.
func Metrics(reg prometheus.Registerer) echo.MiddlewareFunc {
	cfg := DefaultMetricsConfig()
	cfg.Registerer = reg
	return MetricsWithConfig(cfg)
}

// MetricsWithConfig is Metrics with cfg. It panics when the metrics cannot
// be registered, as Echo's middleware do on a bad configuration.
func MetricsWithConfig(cfg MetricsConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = echomw.DefaultSkipper
	}
	if cfg.Subsystem == "" {
		cfg.Subsystem = steps.MetricsSubsystem
	}
	m, err := obs.NewHTTPMetrics(cfg.Subsystem, cfg.Registerer)
	if err != nil {
		panic(err)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			start := time.Now()
			m.Begin()
			defer m.End()
			if err := next(c); err != nil {
				c.Error(err) // answer now, so that the status is known
			}
			steps.Record(m, c, time.Since(start))
			return nil
		}
	}
}
