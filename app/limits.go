package app

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/tier"
)

// BodyLimitConfig configures the BodyLimit middleware.
type BodyLimitConfig struct {
	// Skipper leaves some requests (uploads) unlimited.
	Skipper middleware.Skipper
	// Limit is the largest body accepted, in bytes; DefaultBodyLimit when
	// zero.
	Limit int64
}

// DefaultBodyLimitConfig caps bodies at DefaultBodyLimit.
var DefaultBodyLimitConfig = BodyLimitConfig{Skipper: middleware.DefaultSkipper, Limit: DefaultBodyLimit}

// BodyLimit refuses bodies over the limit with 413: at once when
// Content-Length says so, or when reading passes it (Bind turns the
// reader's error into 413).
func BodyLimit() echo.MiddlewareFunc { return BodyLimitWithConfig(DefaultBodyLimitConfig) }

// BodyLimitWithConfig is BodyLimit with cfg.
func BodyLimitWithConfig(cfg BodyLimitConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	if cfg.Limit == 0 {
		cfg.Limit = DefaultBodyLimit
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			if err := limitBody(c, cfg.Limit); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// limitBody refuses a body larger than limit bytes, or arms the reader
// that will.
func limitBody(c echo.Context, limit int64) error {
	r := c.Request()
	if r.ContentLength > limit {
		return tier.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	}
	return nil
}
