package balancer

import (
	"errors"
	"fmt"
	"time"
)

// ErrNoEndpoint is matched (errors.Is) by the error of a request that no
// endpoint could take: none configured or discovered, or all drained or
// removed. (Endpoints that are down or ejected still take requests in
// panic mode, when nothing better is left.)
var ErrNoEndpoint = errors.New("no endpoint can take the request")

// ErrUnknownEndpoint is returned by the run-time changes (SetWeight, Drain,
// Remove) for a URL the pool does not hold.
var ErrUnknownEndpoint = errors.New("unknown endpoint")

// ErrAttemptTimeout is wrapped by the error of an attempt that got no
// response headers within Config.Retry.AttemptTimeout.
var ErrAttemptTimeout = errors.New("attempt timed out")

// NoEndpointError is the error RoundTrip returns when no endpoint can take a
// request. It matches ErrNoEndpoint.
type NoEndpointError struct {
	Pool string
	// RetryAfter, when positive, is how long until an ejected endpoint comes
	// back: a hint for a Retry-After header.
	RetryAfter time.Duration
}

func (e *NoEndpointError) Error() string {
	return fmt.Sprintf("balancer %q: %v", e.Pool, ErrNoEndpoint)
}

// Is makes errors.Is(err, ErrNoEndpoint) hold.
func (e *NoEndpointError) Is(target error) bool { return target == ErrNoEndpoint }
