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
// THREETIER_APP_BODY_TIMEOUT, ...). An HTTPServer given no WithLimits
// option gets the defaults: every listener is bounded unless told not to be.
type Limits struct {
	// BodyTimeout is the longest a request body may go without a byte
	// arriving, as nginx's client_body_timeout: it measures progress, not
	// the whole upload. A body read that times out fails with an error that
	// is a 408 *Problem; what a handler left unread is discarded under the
	// same bound. Zero means DefaultBodyTimeout; negative turns it off.
	BodyTimeout time.Duration `env:"BODY_TIMEOUT" json:"body_timeout,omitempty"`
	// SendTimeout is the longest a response may go without the client
	// taking a byte, as nginx's send_timeout: a slow download that
	// progresses is never cut. Writes are handed to the kernel 64 KiB at a
	// time, each under this bound, so a client must take 64 KiB per
	// SendTimeout (about 1 KiB/s with the default); files sent with
	// sendfile go in chunks that grow to 1 MiB while the client takes each
	// in under a 64th of SendTimeout, and shrink again when it slows. Over
	// HTTP/2 it also bounds each stream: a write or flush of a stream that
	// waits this long (its client's window at zero) resets that stream
	// alone, failing the handler's write. A connection cut by it is reset,
	// so that the kernel drops what the client did not take.
	// Zero means DefaultSendTimeout; negative turns it off.
	SendTimeout time.Duration `env:"SEND_TIMEOUT" json:"send_timeout,omitempty"`
	// MaxConns caps the connections open at once, and is itself kept below
	// what the process's descriptor limit allows: the cap is at most the
	// soft RLIMIT_NOFILE minus a reserve of an eighth of it (at least 64)
	// for files, upstream connections and logs, and the listeners of one
	// process share that (see ConnBudget). A connection accepted at
	// the cap is served, and another one closed to make room: an idle
	// keep-alive connection first, else the one that has gone longest
	// without a byte moving either way (reset, as SendTimeout's are).
	// Accepting never stalls. Zero means
	// DefaultMaxConns; negative is invalid (the tiers' Validate reject it,
	// NewHTTPServer reads it as zero).
	MaxConns int `env:"MAX_CONNS" json:"max_conns,omitempty"`
	// DrainDelay is how long a stopping listener keeps serving while its
	// /readyz fails and its answers tell balancers it is leaving, before it
	// stops accepting: time for balancers, keepalived and Kubernetes to
	// stop sending. Zero means no delay. WithDrain applies it.
	DrainDelay time.Duration `env:"DRAIN_DELAY" json:"drain_delay,omitempty"`
}

// DefaultLimits returns Limits with every default spelled out.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

// withDefaults fills zero fields with the defaults.
func (l Limits) withDefaults() Limits {
	if l.BodyTimeout == 0 {
		l.BodyTimeout = DefaultBodyTimeout
	}
	if l.SendTimeout == 0 {
		l.SendTimeout = DefaultSendTimeout
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// connCap is MaxConns kept below a descriptor limit of fdLimit (0 when
// there is none), leaving the reserve MaxConns documents: a budget of one.
func (l Limits) connCap(fdLimit uint64) int { return split([]int{l.MaxConns}, fdLimit)[0] }

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

// WithLimits sets the server's Limits; zero fields mean the defaults, as
// without the option.
func WithLimits(l Limits) ServerOption {
	return func(s *HTTPServer) { s.limits = l }
}
