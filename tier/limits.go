package tier

import (
	"log/slog"
	"time"
)

// Defaults of Limits, the values a public-facing listener needs.
const (
	DefaultBodyTimeout = 60 * time.Second
	DefaultSendTimeout = 60 * time.Second
	DefaultMaxConns    = 10000
)

// Limits bounds what clients can hold on one listener and how the listener
// leaves when it stops. Every tier's Config embeds it, so the variables are
// the same under each prefix (THREETIER_WEB_BODY_TIMEOUT,
// THREETIER_APP_BODY_TIMEOUT, ...).
type Limits struct {
	// BodyTimeout is the longest a request body may go without a byte
	// arriving, as nginx's client_body_timeout: it measures progress, not
	// the whole upload. Zero means DefaultBodyTimeout; negative turns it off.
	BodyTimeout time.Duration `env:"BODY_TIMEOUT" json:"body_timeout,omitempty"`
	// SendTimeout is the longest a response may go without the client
	// taking a byte, as nginx's send_timeout: a slow download that
	// progresses is never cut. Zero means DefaultSendTimeout; negative
	// turns it off.
	SendTimeout time.Duration `env:"SEND_TIMEOUT" json:"send_timeout,omitempty"`
	// MaxConns caps the connections open at once, and is itself kept below
	// what the process's descriptor limit allows. Near it, idle keep-alive
	// connections are closed first, then those that have gone longest
	// without progress. Zero means DefaultMaxConns; negative is invalid.
	MaxConns int `env:"MAX_CONNS" json:"max_conns,omitempty"`
	// DrainDelay is how long a stopping listener keeps serving while its
	// /readyz fails and its answers tell balancers it is leaving, before it
	// stops accepting: time for balancers, keepalived and Kubernetes to
	// stop sending. Zero means no delay. WithDrain applies it.
	DrainDelay time.Duration `env:"DRAIN_DELAY" json:"drain_delay,omitempty"`
}

// A ServerOption sets up one HTTPServer.
type ServerOption func(*HTTPServer)

// WithServerLogger sets where the server reports limits that were hit,
// drains and stops; the default discards.
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(s *HTTPServer) {
		if l != nil {
			s.log = l
		}
	}
}
