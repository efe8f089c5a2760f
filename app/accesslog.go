package app

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// accessLog logs one line per request once it is answered: method, path,
// route, status, size and duration; the request ID comes from the context.
// Server errors log at warn; quiet paths (probes, scrapes) at debug.
func accessLog(log *slog.Logger, quiet func(echo.Context) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			level := slog.LevelInfo
			res := c.Response()
			switch {
			case res.Status >= 500:
				level = slog.LevelWarn
			case quiet(c):
				level = slog.LevelDebug
			}
			r := c.Request()
			if !log.Enabled(r.Context(), level) {
				return err
			}
			log.LogAttrs(r.Context(), level, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", c.Path()),
				slog.Int("status", res.Status),
				slog.Int64("bytes", res.Size),
				slog.Duration("took", time.Since(start)),
				slog.String("remote", c.RealIP()),
			)
			return err
		}
	}
}
