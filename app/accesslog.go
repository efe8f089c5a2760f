package app

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// logAccess logs one line per request: method, path, route, status, size
// and duration; the request ID comes from the context. Server errors log
// at warn; quiet paths (probes, scrapes) at debug.
func logAccess(log *slog.Logger, c echo.Context, took time.Duration, quiet bool) {
	level := slog.LevelInfo
	res := c.Response()
	switch {
	case res.Status >= 500:
		level = slog.LevelWarn
	case quiet:
		level = slog.LevelDebug
	}
	r := c.Request()
	if !log.Enabled(r.Context(), level) {
		return
	}
	log.LogAttrs(r.Context(), level, "request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", c.Path()),
		slog.Int("status", res.Status),
		slog.Int64("bytes", res.Size),
		slog.Duration("took", took),
		slog.String("remote", c.RealIP()),
	)
}
