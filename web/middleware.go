package web

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/threetier/threetier/tier"
)

// requestID takes the caller's X-Request-Id when it is sane, or makes one,
// puts it in the request context (for logs and the next tier) and echoes
// it in the response.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		id := r.Header.Get(tier.HeaderRequestID)
		if !validRequestID(id) {
			id = tier.NewRequestID()
			r.Header.Set(tier.HeaderRequestID, id)
		}
		c.SetRequest(r.WithContext(tier.WithRequestID(r.Context(), id)))
		c.Response().Header().Set(tier.HeaderRequestID, id)
		return next(c)
	}
}

// validRequestID accepts up to 128 characters of [A-Za-z0-9._:-], so that
// a client cannot inject log lines or headers through it.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// securityHeaders sets the headers every response of a public site should
// carry; HSTS only over TLS, where browsers honour it.
func securityHeaders(cfg Config, tlsOn bool) echo.MiddlewareFunc {
	hsts := ""
	if tlsOn && cfg.HSTS > 0 {
		hsts = "max-age=" + strconv.FormatInt(int64(cfg.HSTS/time.Second), 10) + "; includeSubDomains"
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
			h.Set("X-Frame-Options", cfg.FrameOptions)
			if hsts != "" {
				h.Set("Strict-Transport-Security", hsts)
			}
			return next(c)
		}
	}
}

// observe counts and times every request and, with a logger, writes one
// access-log line per request.
func observe(m *serverMetrics, log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			m.inFlight.Inc()
			err := next(c)
			if err != nil {
				c.Error(err) // write the problem now, so status and size are known
			}
			m.inFlight.Dec()
			r, w := c.Request(), c.Response()
			elapsed := time.Since(start)
			method := methodLabel(r.Method)
			m.requests.WithLabelValues(method, strconv.Itoa(w.Status)).Inc()
			m.duration.WithLabelValues(method).Observe(elapsed.Seconds())
			m.bytes.Add(float64(w.Size))
			if log != nil && log.Enabled(r.Context(), slog.LevelInfo) {
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

// methodLabel bounds the method label to the standard methods.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}
