package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// bodyLimit refuses bodies larger than limit bytes: at once with 413 when
// Content-Length says so, or when reading passes the limit (Bind turns the
// reader's error into 413).
func bodyLimit(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > limit {
				return tier.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
			}
			return next(c)
		}
	}
}

// requestTimeout gives each request a deadline through its context. When
// the handler fails because that deadline passed, the answer is 503; a
// guard's own timeout stays a 504.
func requestTimeout(d time.Duration, skip func(echo.Context) bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if skip(c) {
				return next(c)
			}
			r := c.Request()
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			c.SetRequest(r.WithContext(ctx))
			err := next(c)
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil &&
				errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) {
				return fmt.Errorf("%w: %w", tier.NewProblem(http.StatusServiceUnavailable, "the request took longer than "+d.String()), err)
			}
			return err
		}
	}
}
