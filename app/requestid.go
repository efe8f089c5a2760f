package app

import (
	"net/http"

	"github.com/threetier/threetier/tier"
)

// maxRequestIDLen bounds an incoming request ID; longer ones are replaced.
const maxRequestIDLen = 128

// requestIDOf returns the request's ID: the one the caller sent in
// tier.HeaderRequestID when it looks like an ID, a fresh one otherwise.
func requestIDOf(r *http.Request) string {
	if id := r.Header.Get(tier.HeaderRequestID); validRequestID(id) {
		return id
	}
	return tier.NewRequestID()
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
