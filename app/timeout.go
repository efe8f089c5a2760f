package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/tier"
)

// TimeoutConfig configures the Timeout middleware.
type TimeoutConfig struct {
	// Skipper leaves some requests unbounded (long polls, streams).
	Skipper middleware.Skipper
	// Timeout bounds each request; DefaultRequestTimeout when zero.
	Timeout time.Duration
}

// DefaultTimeoutConfig bounds requests by DefaultRequestTimeout.
var DefaultTimeoutConfig = TimeoutConfig{Skipper: middleware.DefaultSkipper, Timeout: DefaultRequestTimeout}

// Timeout bounds each request through its context: handlers see the
// deadline and pass it on to the calls they make. A caller's deadline
// (tier.HeaderTimeout, which the web tier and the front door send) makes
// it sooner, never later. Unlike Echo's Timeout it does not answer in the
// handler's place; a handler that fails because the deadline passed
// answers 503, saying so.
func Timeout() echo.MiddlewareFunc { return TimeoutWithConfig(DefaultTimeoutConfig) }

// TimeoutWithConfig is Timeout with cfg.
func TimeoutWithConfig(cfg TimeoutConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultRequestTimeout
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			r := c.Request()
			start := time.Now()
			deadline := requestDeadline(r, start, cfg.Timeout, nil)
			if deadline.IsZero() {
				return next(c)
			}
			ctx, cancel := context.WithDeadline(r.Context(), deadline)
			defer cancel()
			c.SetRequest(r.WithContext(ctx))
			return timedOut(ctx, next(c), deadline.Sub(start))
		}
	}
}

// requestDeadline is when the request r, which arrived at start, must be
// answered: after own (none when zero or negative), or sooner when its
// caller's tier.HeaderTimeout says so; zero for no deadline. A value that
// does not parse is ignored, and logged at debug on log unless it is nil.
func requestDeadline(r *http.Request, start time.Time, own time.Duration, log *slog.Logger) time.Time {
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

// timedOut turns the error of a handler that failed because the request's
// own deadline passed into a 503 that says so. A guard's timeout stays a
// 504, and a client that went away keeps its cancellation.
func timedOut(ctx context.Context, err error, d time.Duration) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		return err
	}
	return fmt.Errorf("%w: %w", tier.NewProblem(http.StatusServiceUnavailable, "the request took longer than "+d.Round(time.Millisecond).String()), err)
}
