package balancer

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/threetier/threetier/tier"
)

// WriteUnavailable answers a request the pool could not serve with 503
// Service Unavailable as application/problem+json, with a Retry-After of
// when an endpoint is expected back (at least a second). Servers that front
// a pool call it when errors.Is(err, ErrNoEndpoint).
func WriteUnavailable(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, ErrNoEndpoint) {
		err = &NoEndpointError{} // the 503 is asked for: at least a second's Retry-After
	}
	writeFailure(w, r, err)
}

// ProxyErrorHandler answers for a request that an httputil.ReverseProxy
// over a pool could not forward: 503 with Retry-After when no endpoint could
// take it, 504 when it timed out, 502 otherwise; always
// application/problem+json, never the upstream's internals.
func ProxyErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	writeFailure(w, r, err)
}

// writeFailure answers what upstreamFailure makes of err, if the client is
// still there to read it.
func writeFailure(w http.ResponseWriter, r *http.Request, err error) {
	status, detail, retryAfter := upstreamFailure(r.Context(), err)
	if status == 0 {
		return // the client left; nobody reads an answer
	}
	p := tier.NewProblem(status, detail)
	p.RetryAfter = retryAfter
	tier.ServeProblem(w, r, p)
}

// upstreamFailure is the answer to a request a pool could not serve: its
// status (0 when the client left and nobody reads an answer), detail, and
// Retry-After.
func upstreamFailure(ctx context.Context, err error) (int, string, time.Duration) {
	switch {
	case errors.Is(err, ErrNoEndpoint):
		retry := time.Second
		var ne *NoEndpointError
		if errors.As(err, &ne) && ne.RetryAfter > retry {
			retry = ne.RetryAfter
		}
		return http.StatusServiceUnavailable, "no healthy instance can take the request; try again later", retry
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return 0, "", 0
	case errors.Is(err, ErrAttemptTimeout) || errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "the upstream did not answer in time", 0
	}
	return http.StatusBadGateway, "the upstream could not be reached", 0
}
