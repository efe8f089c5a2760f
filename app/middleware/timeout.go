package middleware

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/app/internal/steps"
)

// TimeoutConfig configures the Timeout middleware.
type TimeoutConfig struct {
	// Skipper leaves some requests unbounded (long polls, streams).
	Skipper echomw.Skipper
	// Timeout bounds each request; app.DefaultRequestTimeout when zero.
	Timeout time.Duration
}

// DefaultTimeoutConfig bounds requests by app.DefaultRequestTimeout.
func DefaultTimeoutConfig() TimeoutConfig {
	return TimeoutConfig{Skipper: echomw.DefaultSkipper, Timeout: app.DefaultRequestTimeout}
}

// Timeout bounds each request through its context: handlers see the
// deadline and pass it on to the calls they make. A caller's deadline
// (tier.HeaderTimeout, which the web tier and the front door send) makes
// it sooner, never later. Unlike Echo's Timeout it does not answer in the
// handler's place; a handler that fails because the deadline passed
// answers 503, saying so.
func Timeout() echo.MiddlewareFunc { return TimeoutWithConfig(DefaultTimeoutConfig()) }

// TimeoutWithConfig is Timeout with cfg.
func TimeoutWithConfig(cfg TimeoutConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = echomw.DefaultSkipper
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = app.DefaultRequestTimeout
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			r := c.Request()
			start := time.Now()
			deadline := steps.RequestDeadline(r, start, cfg.Timeout, nil)
			if deadline.IsZero() {
				return next(c)
			}
			ctx, cancel := context.WithDeadline(r.Context(), deadline)
			defer cancel()
			c.SetRequest(r.WithContext(ctx))
			return steps.TimedOut(ctx, next(c), deadline.Sub(start), app.ErrTimeout)
		}
	}
}
