package middleware

import (
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/app/internal/steps"
)

// ShedConfig configures the Shed middleware.
type ShedConfig struct {
	// Skipper lets some requests (probes, scrapes) in whatever the load.
	Skipper echomw.Skipper
	// MaxInFlight caps the requests served at once; app.DefaultMaxInFlight
	// when zero.
	MaxInFlight int
	// Latency, when positive, makes the cap adaptive, down to MinInFlight
	// (app.DefaultMinInFlight when zero); see app.Config.ShedLatency.
	Latency     time.Duration
	MinInFlight int
	// RetryAfter is sent with refusals; app.DefaultShedRetryAfter when
	// zero.
	RetryAfter time.Duration
	// OnShed, when set, is called for every refusal (to count them).
	OnShed func()
}

// DefaultShedConfig caps requests in flight at app.DefaultMaxInFlight.
func DefaultShedConfig() ShedConfig {
	return ShedConfig{Skipper: echomw.DefaultSkipper, MaxInFlight: app.DefaultMaxInFlight}
}

// Shed refuses requests past a cap on those in flight with 503 and
// Retry-After, rather than queueing them.
func Shed() echo.MiddlewareFunc { return ShedWithConfig(DefaultShedConfig()) }

// ShedWithConfig is Shed with cfg.
func ShedWithConfig(cfg ShedConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = echomw.DefaultSkipper
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = app.DefaultMaxInFlight
	}
	if cfg.MinInFlight == 0 {
		cfg.MinInFlight = app.DefaultMinInFlight
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = app.DefaultShedRetryAfter
	}
	s := steps.NewShedder(cfg.MaxInFlight, cfg.MinInFlight, cfg.Latency, cfg.RetryAfter, cfg.OnShed)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			start := time.Now()
			n, ok := s.Admit()
			if !ok {
				return s.Refusal()
			}
			defer s.Release(n, start)
			return next(c)
		}
	}
}
