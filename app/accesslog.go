package app

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/tier"
)

// AccessLogConfig configures the AccessLog middleware.
type AccessLogConfig struct {
	// Skipper leaves some requests out of the log.
	Skipper middleware.Skipper
	// Logger receives the lines in the tier.AccessLogLogger format;
	// nothing is logged when nil.
	Logger *slog.Logger
	// Format, Fields and Output choose what a line holds and where it goes.
	tier.AccessLogConfig
}

// DefaultAccessLogConfig logs tier.DefaultAccessFields through Logger.
var DefaultAccessLogConfig = AccessLogConfig{Skipper: middleware.DefaultSkipper}

// AccessLog logs one line per request once it is answered (see
// accesslog.Log). Place it outside the middleware that answers errors, or
// use it with ErrorHandler, so that the line has the final status.
func AccessLog() echo.MiddlewareFunc { return AccessLogWithConfig(DefaultAccessLogConfig) }

// AccessLogWithConfig is AccessLog with cfg. It panics on an unknown
// format, as Echo's middleware do on a bad configuration.
func AccessLogWithConfig(cfg AccessLogConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
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
			logAccess(al, c, start, time.Now(), false)
			return nil
		}
	}
}

// logAccess logs c's request, served from start to end.
func logAccess(al *accesslog.Log, c echo.Context, start, end time.Time, quiet bool) {
	res := c.Response()
	if !al.Enabled(c.Request().Context(), res.Status, quiet) {
		return // before finding the client's address
	}
	al.Log(&accesslog.Entry{
		Request: c.Request(), Remote: c.RealIP(), Route: c.Path(),
		Status: res.Status, Bytes: res.Size, Duration: end.Sub(start), Time: end, Quiet: quiet,
	})
}
