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

// limitBody refuses bodies larger than limit bytes: at once with 413 when
// Content-Length says so, or when reading passes the limit (Bind turns the
// reader's error into 413).
func limitBody(c echo.Context, limit int64) error {
	r := c.Request()
	if r.ContentLength > limit {
		return tier.NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
	}
	return nil
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
