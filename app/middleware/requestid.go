package middleware

import (
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/app/internal/steps"
)

// RequestIDConfig configures the RequestID middleware.
type RequestIDConfig struct {
	// Skipper leaves some requests without an ID.
	Skipper echomw.Skipper
	// Generator makes the ID of a request that brought no valid one;
	// tier.NewRequestID when nil.
	Generator func() string
}

// DefaultRequestIDConfig accepts a valid incoming X-Request-Id and makes
// one otherwise.
func DefaultRequestIDConfig() RequestIDConfig { return RequestIDConfig{Skipper: echomw.DefaultSkipper} }

// RequestID gives every request an ID: the caller's X-Request-Id when it
// is valid (up to 128 characters of [A-Za-z0-9._:-]), a fresh one
// otherwise. The ID goes into the request's context, for logs
// (tier.RequestID) and for calls to other tiers, and on the response. The
// context also carries the request's method, which decides whether
// guarded calls are idempotent (see app.Call).
func RequestID() echo.MiddlewareFunc { return RequestIDWithConfig(DefaultRequestIDConfig()) }

// RequestIDWithConfig is RequestID with cfg.
func RequestIDWithConfig(cfg RequestIDConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = echomw.DefaultSkipper
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			c.SetRequest(c.Request().WithContext(steps.RequestContext(c, cfg.Generator, time.Time{})))
			return next(c)
		}
	}
}
