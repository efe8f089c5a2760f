// Package httpx holds the HTTP plumbing the tiers share below package tier,
// which users never call: the request context (ID, method, deadline),
// request IDs, the header a draining server marks its answers with, and
// the status recorded for a client that left.
// tier builds on it; app, web and balancer use it directly.
package httpx

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
)

// HeaderRequestID is the header that carries a request ID between tiers
// (tier.HeaderRequestID).
const HeaderRequestID = "X-Request-Id"

// DrainingHeader is set on every answer of a server that is draining. A
// balancer pool that sees it takes the endpoint out of rotation at once,
// without waiting for its health checks to fail, and removes the header
// before passing the answer on (as Envoy does with
// x-envoy-immediate-health-check-fail).
const DrainingHeader = "Threetier-Draining"

type requestIDKey struct{}

// WithRequestID returns a context that carries id; loggers made by tier.NewLogger
// add it to every record, and the balancer forwards it to the next tier.
// It is a RequestContext without a deadline: one allocation, where
// context.WithValue would box the string into an interface as well.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &RequestContext{Context: ctx, ids: [1]string{id}}
}

// RequestMethod returns the method of the request being served under ctx,
// as its edge recorded it (RequestContext.SetMethod), or "" when ctx says
// nothing about it.
func RequestMethod(ctx context.Context) string {
	if c, ok := ctx.Value(requestIDKey{}).(*RequestContext); ok {
		return c.method
	}
	return ""
}

// RequestID returns the request ID ctx carries, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.Value(requestIDKey{}).(*RequestContext); ok {
		return c.ID()
	}
	return ""
}

// NewRequestID returns a random 128-bit ID as 32 hex digits. The bits come
// from the runtime's per-thread ChaCha8 generator rather than the kernel's:
// an ID must be unique, not secret, and it is made for every request.
func NewRequestID() string {
	var s [32]byte
	return string(AppendNewRequestID(s[:0])) // the one allocation
}

// AppendNewRequestID appends a new request ID, as NewRequestID makes it,
// to dst: for a server that writes headers as bytes.
func AppendNewRequestID(dst []byte) []byte {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.AppendEncode(dst, b[:])
}

// ValidRequestID accepts up to 128 characters of [A-Za-z0-9._:-], so that
// an ID a client sends cannot inject log lines or headers.
func ValidRequestID(id string) bool {
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

// AcceptRequestID returns the request ID of a request with header h, as
// a header value: the one the caller sent when there is exactly one and
// it is valid, otherwise one made by generate (NewRequestID when nil). The
// slice is h's own when accepted, so that echoing it on the response or
// forwarding it costs nothing.
func AcceptRequestID(h http.Header, generate func() string) []string {
	if ids := h[HeaderRequestID]; len(ids) == 1 && ValidRequestID(ids[0]) {
		return ids
	}
	if generate == nil {
		generate = NewRequestID
	}
	return []string{generate()}
}
