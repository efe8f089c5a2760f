package app

import (
	"net/http"

	"github.com/threetier/threetier/tier"
)

// requestIDOf returns the request's ID: the one the caller sent in
// tier.HeaderRequestID when it looks like an ID, a fresh one otherwise.
func requestIDOf(r *http.Request) string {
	if id := r.Header.Get(tier.HeaderRequestID); tier.ValidRequestID(id) {
		return id
	}
	return tier.NewRequestID()
}
