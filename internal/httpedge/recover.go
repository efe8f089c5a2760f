// Package httpedge holds what the tiers' HTTP edges share on top of package
// tier but users never call: turning a handler's panic into a logged 500,
// and the listener that redirects HTTP to HTTPS.
package httpedge

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/threetier/threetier/tier"
)

// panicStackSize bounds the stack logged with a panic.
const panicStackSize = 8 << 10

// panicError is what a recovered panic becomes: a 500 for the client, the
// value for the log.
type panicError struct {
	value any
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// Unwrap makes the panic a 500 problem wherever errors become problems.
func (e *panicError) Unwrap() error { return tier.NewProblem(http.StatusInternalServerError, "") }

// Recovered handles v, a value recovered from a panic while serving r: it
// logs it with the goroutine's stack and returns the error to answer with.
// http.ErrAbortHandler is panicked again: it is how a handler asks
// net/http to drop the connection. Call it from the deferred function that
// calls recover.
func Recovered(log *slog.Logger, r *http.Request, v any) error {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	return RecoveredRequest(r.Context(), log, r.Method, r.URL.Path, v)
}

// RecoveredRequest is Recovered for a server without an *http.Request: it
// logs v, recovered while serving method and path under ctx, with the
// goroutine's stack, and returns the error to answer with.
func RecoveredRequest(ctx context.Context, log *slog.Logger, method, path string, v any) error {
	stack := make([]byte, panicStackSize)
	stack = stack[:runtime.Stack(stack, false)]
	log.LogAttrs(ctx, slog.LevelError, "panic serving request",
		slog.String("method", method),
		slog.String("path", path),
		slog.String("panic", fmt.Sprint(v)),
		slog.String("stack", string(stack)))
	return &panicError{value: v}
}
