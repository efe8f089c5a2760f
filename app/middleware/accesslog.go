package middleware

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/app/internal/steps"
	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/tier"
)

// AccessLogConfig configures the AccessLog middleware.
type AccessLogConfig struct {
	// Skipper leaves some requests out of the log.
	Skipper echomw.Skipper
	// Logger receives the lines in the tier.AccessLogLogger format;
	// nothing is logged when nil.
	Logger *slog.Logger
	// Format, Fields and Output choose what a line holds and where it goes.
	tier.AccessLogConfig
}

// DefaultAccessLogConfig logs tier.DefaultAccessFields through Logger.
func DefaultAccessLogConfig() AccessLogConfig {
	return AccessLogConfig{Skipper: echomw.DefaultSkipper}
}

// AccessLog logs one line per request once it is answered, as the tiers
// do: at warn for 5xx answers, info otherwise, with the request's ID.
// Place it outside the middleware that answers errors, or use it with
// app.ErrorHandler, so that the line has the final status.
func AccessLog() echo.MiddlewareFunc { return AccessLogWithConfig(DefaultAccessLogConfig()) }

// AccessLogWithConfig is AccessLog with cfg. It panics on an unknown
// format, as Echo's middleware do on a bad configuration.
func AccessLogWithConfig(cfg AccessLogConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = echomw.DefaultSkipper
	}
	al, err := accesslog.New(cfg.AccessLogConfig, cfg.Logger)
	if err != nil {
		panic(err)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			start := time.Now()
			if err := next(c); err != nil {
				c.Error(err) // answer now, so that the line has the status
			}
			steps.LogAccess(al, c, start, time.Now(), false)
			return nil
		}
	}
}
