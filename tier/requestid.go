package tier

import (
	"context"

	"github.com/threetier/threetier/internal/httpx"
)

// HeaderRequestID, X-Request-Id, is the header that carries a request ID
// between tiers. Each tier takes a valid one from its caller (up to 128
// characters of [A-Za-z0-9._:-]), makes one otherwise, and echoes it on
// the answer.
const HeaderRequestID = httpx.HeaderRequestID

// RequestID returns the request ID ctx carries, or "": the tiers put the
// ID of the request being served in its context, and NewLogger's loggers
// add it to every record logged with that context.
func RequestID(ctx context.Context) string { return httpx.RequestID(ctx) }

// NewRequestID returns a random 128-bit ID as 32 hex digits, as the tiers
// make for a request that brings none.
func NewRequestID() string { return httpx.NewRequestID() }
