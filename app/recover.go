package app

import (
	"log/slog"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/obs"
)

// RecoverConfig configures the Recover middleware.
type RecoverConfig struct {
	// Skipper leaves some requests unprotected.
	Skipper middleware.Skipper
	// Logger receives the panic and its stack; nothing is logged when nil.
	Logger *slog.Logger
}

// DefaultRecoverConfig recovers every request, logging nowhere.
var DefaultRecoverConfig = RecoverConfig{Skipper: middleware.DefaultSkipper}

// Recover turns a handler's panic into an error that ErrorHandler answers
// with a 500 problem, and logs it with the goroutine's stack; the server
// keeps serving. http.ErrAbortHandler keeps its meaning: it goes on up and
// aborts the response.
func Recover() echo.MiddlewareFunc { return RecoverWithConfig(DefaultRecoverConfig) }

// RecoverWithConfig is Recover with cfg.
func RecoverWithConfig(cfg RecoverConfig) echo.MiddlewareFunc {
	if cfg.Skipper == nil {
		cfg.Skipper = middleware.DefaultSkipper
	}
	log := obs.Logger(cfg.Logger)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if cfg.Skipper(c) {
				return next(c)
			}
			return serveRecovering(log, c, next)
		}
	}
}

// serveRecovering runs h, turning its panic into the error to answer with.
func serveRecovering(log *slog.Logger, c echo.Context, h echo.HandlerFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = httpedge.Recovered(log, c.Request(), v)
		}
	}()
	return h(c)
}
