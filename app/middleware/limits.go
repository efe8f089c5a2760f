package middleware

import (
	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/app/internal/steps"
)

// BodyLimitConfig configures the BodyLimit middleware.
type BodyLimitConfig struct {
	// Skipper leaves some requests (uploads) unlimited.
	Skipper echomw.Skipper
	// MaxBodyBytes is the largest body accepted, in bytes; app.DefaultMaxBodyBytes
	// when zero.
	MaxBodyBytes int64
}

// DefaultBodyLimitConfig caps bodies at app.DefaultMaxBodyBytes.
func DefaultBodyLimitConfig() BodyLimitConfig {
	return BodyLimitConfig{Skipper: echomw.DefaultSkipper, MaxBodyBytes: app.DefaultMaxBodyBytes}
}

// BodyLimit refuses bodies over the limit with 413: at once when
// Content-Length says so, or when reading passes it (app.Bind turns the
// reader's error into 413).
func BodyLimit() echo.MiddlewareFunc { return BodyLimitWithConfig(DefaultBodyLimitConfig()) }

// BodyLimitWithConfig is BodyLimit with cfg.
func BodyLimitWithConfig(cfg BodyLimitConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = echomw.DefaultSkipper
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = app.DefaultMaxBodyBytes
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			if err := steps.LimitBody(c, cfg.MaxBodyBytes); err != nil {
				return err
			}
			return next(c)
		}
	}
}
