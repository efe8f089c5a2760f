package tier

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
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

// NewRequestID returns a random 128-bit ID as 32 hex digits. The bits come
// from the runtime's per-thread ChaCha8 generator rather than the kernel's:
// an ID must be unique, not secret, and it is made for every request.
func NewRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
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
