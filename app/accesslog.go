package app

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
)

// observe times each request once and hands the figure to the access log
// and the metrics, after the answer is sent (errors are answered inside
// it, so both see the final status).
func observe(log *slog.Logger, m *httpMetrics, quiet func(echo.Context) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			m.inFlight.Inc()
			defer m.inFlight.Dec() // also when a handler aborts with a panic
			err := next(c)
			took := time.Since(start)
			m.record(c, took)
			logAccess(log, c, took, quiet)
			return err
		}
	}
}

// logAccess logs one line per request: method, path, route, status, size
// and duration; the request ID comes from the context. Server errors log
// at warn; quiet paths (probes, scrapes) at debug.
func logAccess(log *slog.Logger, c echo.Context, took time.Duration, quiet func(echo.Context) bool) {
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
