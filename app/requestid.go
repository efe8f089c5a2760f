package app

import (
	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// maxRequestIDLen bounds an incoming request ID; longer ones are replaced.
const maxRequestIDLen = 128

// requestID gives every request an ID: the one the caller sent in
// tier.HeaderRequestID when it looks like an ID, a fresh one otherwise. The
// ID goes into the request context (so every log line and every outbound
// call carries it) and back in the response header.
func requestID() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			id := r.Header.Get(tier.HeaderRequestID)
			if !validRequestID(id) {
				id = tier.NewRequestID()
			}
			c.Response().Header().Set(tier.HeaderRequestID, id)
			c.SetRequest(r.WithContext(tier.WithRequestID(r.Context(), id)))
			return next(c)
		}
	}
}

// validRequestID accepts short IDs of letters, digits and -_.:, which keep
// log lines and headers clean whatever a client sends.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '_', b == '.', b == ':':
		default:
			return false
		}
	}
	return true
}
