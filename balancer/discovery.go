package balancer

import "context"

// An Endpoint is one instance as a Discoverer reports it, or as Add takes it.
type Endpoint struct {
	// URL is the base URL: "http://10.0.0.7:8080".
	URL string
	// Weight is the endpoint's share relative to the others, 1 to MaxWeight;
	// zero means 1.
	Weight int
	// Backup endpoints take traffic only when no primary is healthy.
	Backup bool
}

// MaxWeight is the largest endpoint weight.
const MaxWeight = 1000

// A Discoverer finds the endpoints of an upstream. Discover returns the
// complete current list; an endpoint that stays in the list keeps what the
// pool learned about it (health, latency, ejections). An error, or an empty
// list, leaves the pool's endpoints as they are: a DNS hiccup must not
// empty the pool.
type Discoverer interface {
	Discover(ctx context.Context) ([]Endpoint, error)
}

// Static is a fixed list of endpoints, as a Discoverer.
type Static []Endpoint

// Discover returns the list.
func (s Static) Discover(context.Context) ([]Endpoint, error) { return s, nil }
