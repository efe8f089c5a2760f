package web

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// edge is the web tier's one middleware: request ID, security headers,
// panic recovery, metrics and the access log. It is one function rather
// than five because Echo builds the middleware chain anew for every
// request, and each link costs an allocation on the hottest path.
func edge(cfg Config, tlsOn bool, m *serverMetrics, log *slog.Logger) echo.MiddlewareFunc {
	security := securityHeaders(cfg, tlsOn)
	log = obs.Logger(log)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			r, w := c.Request(), c.Response()
			h := w.Header()

			ids := r.Header[tier.HeaderRequestID]
			if len(ids) != 1 || !tier.ValidRequestID(ids[0]) {
				ids = []string{tier.NewRequestID()}
				r.Header[tier.HeaderRequestID] = ids
			}
			r = r.WithContext(tier.WithRequestID(r.Context(), ids[0]))
			c.SetRequest(r)
			h[tier.HeaderRequestID] = ids
			for _, kv := range security {
				h[kv.key] = kv.value
			}

			m.inFlight.Inc()
			if err := serveRecovering(next, c, log); err != nil {
				c.Error(err) // write the problem now, so status and size are known
			}
			m.inFlight.Dec()

			elapsed := time.Since(start)
			m.request(r.Method, w.Status, elapsed.Seconds())
			m.bytes.Add(float64(w.Size))
			if log.Enabled(r.Context(), slog.LevelInfo) {
				log.LogAttrs(r.Context(), slog.LevelInfo, "access",
					slog.String("remote", r.RemoteAddr),
					slog.String("method", r.Method),
					slog.String("uri", r.RequestURI),
					slog.String("proto", r.Proto),
					slog.Int("status", w.Status),
					slog.Int64("bytes", w.Size),
					slog.Duration("duration", elapsed),
					slog.String("user_agent", r.UserAgent()),
				)
			}
			return nil
		}
	}
}

// serveRecovering runs next and turns a panic into an error (a 500 for
// the client, a logged stack for the operator). http.ErrAbortHandler is
// passed on: it is how a handler asks net/http to drop the connection.
func serveRecovering(next echo.HandlerFunc, c echo.Context, log *slog.Logger) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.ErrorContext(c.Request().Context(), "web: handler panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return next(c)
}

type headerValue struct {
	key   string // canonical
	value []string
}

// securityHeaders returns the headers every response of a public site
// should carry; HSTS only over TLS, where browsers honour it.
func securityHeaders(cfg Config, tlsOn bool) []headerValue {
	if cfg.NoSecurityHeaders {
		return nil
	}
	hs := []headerValue{
		{"X-Content-Type-Options", one("nosniff")},
		{"Referrer-Policy", one("strict-origin-when-cross-origin")},
		{"X-Frame-Options", one(cfg.FrameOptions)},
	}
	if tlsOn && cfg.HSTS > 0 {
		hs = append(hs, headerValue{"Strict-Transport-Security", one("max-age=" + strconv.FormatInt(int64(cfg.HSTS/time.Second), 10) + "; includeSubDomains")})
	}
	return hs
}
