package app

import (
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

// RequestIDConfig configures the RequestID middleware.
type RequestIDConfig struct {
	// Skipper leaves some requests without an ID.
	Skipper middleware.Skipper
	// Generator makes the ID of a request that brought no valid one;
	// tier.NewRequestID when nil.
	Generator func() string
}

// DefaultRequestIDConfig accepts a valid incoming X-Request-Id and makes
// one otherwise.
var DefaultRequestIDConfig = RequestIDConfig{Skipper: middleware.DefaultSkipper}

// RequestID gives every request an ID: the caller's X-Request-Id when it
// is valid (httpx.ValidRequestID), a fresh one otherwise. The ID goes into
// the request's context, for logs (tier.RequestID) and for calls to other
// tiers, and on the response. The context also carries the request's
// method, which decides whether guarded calls are idempotent (see Call).
func RequestID() echo.MiddlewareFunc { return RequestIDWithConfig(DefaultRequestIDConfig) }

// RequestIDWithConfig is RequestID with cfg.
func RequestIDWithConfig(cfg RequestIDConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			c.SetRequest(c.Request().WithContext(requestContext(c, cfg.Generator, time.Time{})))
			return next(c)
		}
	}
}

// requestContext returns the context of c's request, carrying its ID and
// method (guards repeat the calls of safe methods) and bounded by deadline
// unless that is zero, and echoes the ID on the response.
func requestContext(c echo.Context, generate func() string, deadline time.Time) *httpx.RequestContext {
	r := c.Request()
	ctx := httpx.NewRequestContext(r.Context(), r.Header, generate, deadline)
	ctx.SetMethod(r.Method)
	c.Response().Header()[tier.HeaderRequestID] = ctx.IDHeader()
	return ctx
}
