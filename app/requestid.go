package app

import (
	"context"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

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
// is valid (tier.ValidRequestID), a fresh one otherwise. The ID goes into
// the request's context, for logs (tier.RequestID) and for calls to other
// tiers, and on the response.
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
			r := c.Request()
			c.SetRequest(r.WithContext(withRequestID(c, r.Context(), cfg.Generator)))
			return next(c)
		}
	}
}

// withRequestID echoes the request's ID on the response and returns ctx
// carrying it.
func withRequestID(c echo.Context, ctx context.Context, generate func() string) context.Context {
	ids := tier.AcceptRequestID(c.Request().Header, generate)
	c.Response().Header()[tier.HeaderRequestID] = ids
	return tier.WithRequestID(ctx, ids[0])
}
