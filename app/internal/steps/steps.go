// Package steps holds the steps of the app tier's middleware chain:
// app.Server runs them as one middleware, and app/middleware offers each
// as an Echo middleware of its own, so that both behave alike.
package steps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// MetricsSubsystem names the app tier's metrics: threetier_app_*.
const MetricsSubsystem = "app"

// RequestContext returns the context of c's request, carrying its ID and
// method (guards repeat the calls of safe methods) and bounded by deadline
// unless that is zero, and echoes the ID on the response. generate makes
// the ID of a request that brought no valid one (a random one when nil).
func RequestContext(c echo.Context, generate func() string, deadline time.Time) *httpx.RequestContext {
	r := c.Request()
	ctx := httpx.NewRequestContext(r.Context(), r.Header, generate, deadline)
	ctx.SetMethod(r.Method)
	c.Response().Header()[httpx.HeaderRequestID] = ctx.IDHeader()
	return ctx
}

// LogAccess logs c's request, served from start to end.
func LogAccess(al *accesslog.Log, c echo.Context, start, end time.Time, quiet bool) {
	res := c.Response()
	if !al.Enabled(c.Request().Context(), res.Status, quiet) {
		return // before finding the client's address
	}
	al.Log(&accesslog.Entry{
		Request: c.Request(), Remote: c.RealIP(), Route: c.Path(),
		Status: res.Status, Bytes: res.Size, Duration: end.Sub(start), Time: end, Quiet: quiet,
	})
}

// Record counts c's answered request.
func Record(m *obs.HTTPMetrics, c echo.Context, took time.Duration) {
	res := c.Response()
	m.Observe(c.Request().Method, c.Path(), res.Status, took, res.Size)
}

// Recovering runs h, turning its panic into the error to answer with.
func Recovering(log *slog.Logger, c echo.Context, h echo.HandlerFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = httpedge.Recovered(log, c.Request(), v)
		}
	}()
	return h(c)
}

// LimitBody refuses a body larger than limit bytes, or arms the reader
// that will.
func LimitBody(c echo.Context, limit int64) error {
	r := c.Request()
	if r.ContentLength > limit {
		return tier.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	}
	return nil
}

// TimedOut turns the error of a handler that failed because the request's
// own deadline d passed into a 503 that says so. A guard's timeout
// (guardTimeout, app.ErrTimeout) stays a 504, and a client that went away
// keeps its cancellation.
func TimedOut(ctx context.Context, err error, d time.Duration, guardTimeout error) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, guardTimeout) {
		return err
	}
	return fmt.Errorf("%w: %w", tier.NewProblem(http.StatusServiceUnavailable, "the request took longer than "+d.Round(time.Millisecond).String()), err)
}

// RequestDeadline is when the request r, which arrived at start, must be
// answered: after own (none when zero or negative), or sooner when its
// caller's tier.HeaderTimeout says so; zero for no deadline. A value that
// does not parse is ignored, and logged at debug on log unless it is nil.
func RequestDeadline(r *http.Request, start time.Time, own time.Duration, log *slog.Logger) time.Time {
	var deadline time.Time
	if own > 0 {
		deadline = start.Add(own)
	}
	for _, v := range r.Header[tier.HeaderTimeout] {
		var err error
		if deadline, err = tier.ShortenDeadline(deadline, start, v); err != nil && log != nil {
			log.DebugContext(r.Context(), "ignoring the caller's deadline", "header", tier.HeaderTimeout, "err", err)
		}
	}
	return deadline
}
