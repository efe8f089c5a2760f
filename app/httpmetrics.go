package app

import (
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
)

// MetricsConfig configures the Metrics middleware.
type MetricsConfig struct {
	// Skipper leaves some requests uncounted.
	Skipper middleware.Skipper
	// Registerer receives the metrics; when nil they go nowhere.
	Registerer prometheus.Registerer
	// Subsystem is the tier part of the names: threetier_<Subsystem>_...
	Subsystem string
}

// DefaultMetricsConfig registers threetier_app_* on the default
// registerer.
var DefaultMetricsConfig = MetricsConfig{
	Skipper: middleware.DefaultSkipper, Registerer: prometheus.DefaultRegisterer, Subsystem: metricsSubsystem,
}

// Metrics counts requests by method, route and status, and measures their
// duration (see obs.HTTPMetrics).
func Metrics() echo.MiddlewareFunc { return MetricsWithConfig(DefaultMetricsConfig) }

// MetricsWithConfig is Metrics with cfg. It panics when the metrics cannot
// be registered, as Echo's middleware do on a bad configuration.
func MetricsWithConfig(cfg MetricsConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	if cfg.Subsystem == "" {
		cfg.Subsystem = metricsSubsystem
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
			record(m, c, time.Since(start))
			return nil
		}
	}
}

// record counts c's answered request.
func record(m *obs.HTTPMetrics, c echo.Context, took time.Duration) {
	res := c.Response()
	m.Observe(c.Request().Method, c.Path(), res.Status, took, res.Size)
}
