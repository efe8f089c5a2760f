package middleware

import (
	"log/slog"

	"github.com/labstack/echo/v4"
	echomw "github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/app/internal/steps"
	"github.com/threetier/threetier/internal/obs"
)

// RecoverConfig configures the Recover middleware.
type RecoverConfig struct {
	// Skipper leaves some requests unprotected.
	Skipper echomw.Skipper
	// Logger receives the panic and its stack; nothing is logged when nil.
	Logger *slog.Logger
}

// DefaultRecoverConfig recovers every request, logging nowhere.
func DefaultRecoverConfig() RecoverConfig { return RecoverConfig{Skipper: echomw.DefaultSkipper} }

// Recover turns a handler's panic into an error that app.ErrorHandler
// answers with a 500 problem, and logs it with the goroutine's stack; the
// server keeps serving. http.ErrAbortHandler keeps its meaning: it goes on
// up and aborts the response.
func Recover() echo.MiddlewareFunc { return RecoverWithConfig(DefaultRecoverConfig()) }

// RecoverWithConfig is Recover with cfg.
func RecoverWithConfig(cfg RecoverConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = echomw.DefaultSkipper
	}
	log := obs.Logger(cfg.Logger)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			return steps.Recovering(log, c, next)
		}
	}
}
