package balancer

import (
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
	retry := time.Second
	var ne *NoEndpointError
	if errors.As(err, &ne) && ne.RetryAfter > retry {
		retry = ne.RetryAfter
	}
	p := tier.NewProblem(http.StatusServiceUnavailable, "no healthy instance can take the request; try again later")
	p.RetryAfter = retry
	p.Instance = r.URL.Path
	p.RequestID = tier.RequestID(r.Context())
	tier.WriteProblem(w, p)
}
