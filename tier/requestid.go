package tier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// HeaderRequestID is the header that carries a request ID between tiers.
const HeaderRequestID = "X-Request-Id"

type requestIDKey struct{}

// WithRequestID returns a context that carries id; loggers made by NewLogger
// add it to every record, and the balancer forwards it to the next tier.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a random 128-bit ID as 32 hex digits.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
