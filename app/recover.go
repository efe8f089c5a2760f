package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// panicStackSize bounds the stack logged with a panic.
const panicStackSize = 8 << 10

// panicked turns a handler's panic into a 500 problem and logs it with the
// goroutine's stack; the server keeps serving. http.ErrAbortHandler keeps
// its meaning: it goes on up and aborts the response.
func panicked(log *slog.Logger, c echo.Context, v any) error {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	stack := make([]byte, panicStackSize)
	stack = stack[:runtime.Stack(stack, false)]
	log.LogAttrs(c.Request().Context(), slog.LevelError, "panic serving request",
		slog.String("path", c.Request().URL.Path),
		slog.String("panic", fmt.Sprint(v)),
		slog.String("stack", string(stack)))
	return fmt.Errorf("%w: panic: %v", tier.NewProblem(http.StatusInternalServerError, ""), v)
}
