package app

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/tier"
)

// recoverPanics turns a panic in a handler into a 500 problem and logs
// the panic with the goroutine's stack; the server keeps serving.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RecoverWithConfig(middleware.RecoverConfig{
		StackSize:           8 << 10,
		DisableStackAll:     true,
		DisableErrorHandler: true, // return the error: the chain answers it
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.LogAttrs(c.Request().Context(), slog.LevelError, "panic serving request",
				slog.String("path", c.Request().URL.Path),
				slog.String("panic", err.Error()),
				slog.String("stack", string(stack)))
			return fmt.Errorf("%w: panic: %w", tier.NewProblem(http.StatusInternalServerError, ""), err)
		},
	})
}

// answerErrors sends the answer for an error right where it is returned, so
// that the access log and the metrics around it see the final status.
func answerErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := next(c); err != nil {
			c.Error(err)
		}
		return nil
	}
}
