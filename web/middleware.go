package web

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// edge is the web tier's one middleware: request ID, security headers,
// panic recovery, metrics and the access log, each a step of tier's shared
// edge. It is one function rather than five because Echo builds the
// middleware chain anew for every request, and each link costs an
// allocation on the hottest path.
func edge(security []headerValue, m *obs.HTTPMetrics, access *accesslog.Log, log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			r, w := c.Request(), c.Response()
			h := w.Header()

			// The ID goes on to the app tier with the request's headers.
			ids := httpx.AcceptRequestID(r.Header, nil)
			r.Header[tier.HeaderRequestID] = ids
			r = r.WithContext(httpx.WithRequestID(r.Context(), ids[0]))
			c.SetRequest(r)
			h[tier.HeaderRequestID] = ids
			for _, kv := range security {
				h[kv.key] = kv.value
			}

			m.Begin()
			defer m.End() // also when a handler aborts with a panic
			if err := serveRecovering(next, c, log); err != nil {
				c.Error(err) // write the problem now, so status and size are known
			}
			elapsed := time.Since(start)
			m.Observe(r.Method, c.Path(), w.Status, elapsed, w.Size)
			access.Log(&accesslog.Entry{Request: r, Route: c.Path(), Status: w.Status, Bytes: w.Size, Duration: elapsed})
			return nil
		}
	}
}

// serveRecovering runs next and turns a panic into the error to answer
// with (see httpedge.Recovered).
func serveRecovering(next echo.HandlerFunc, c echo.Context, log *slog.Logger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = httpedge.Recovered(log, c.Request(), v)
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
