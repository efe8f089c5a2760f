package app

import (
	"context"
	"errors"
	"fmt"
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
// deadline and pass it on to the calls they make. Unlike Echo's Timeout it
// does not answer in the handler's place; a handler that fails because the
// deadline passed answers 503, saying so.
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
			ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
			defer cancel()
			c.SetRequest(r.WithContext(ctx))
			return timedOut(ctx, next(c), cfg.Timeout)
		}
	}
}

// timedOut turns the error of a handler that failed because the request's
// own deadline passed into a 503 that says so. A guard's timeout stays a
// 504, and a client that went away keeps its cancellation.
func timedOut(ctx context.Context, err error, d time.Duration) error {
	if err == nil || !errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		!errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		return err
	}
	return fmt.Errorf("%w: %w", tier.NewProblem(http.StatusServiceUnavailable, "the request took longer than "+d.String()), err)
}
