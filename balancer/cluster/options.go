package cluster

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/balancer/ratelimit"
)

// An Option sets what a Config cannot hold: code, not data.
type Option func(*options)

type options struct {
	logger   *slog.Logger
	registry prometheus.Registerer
	limiter  *ratelimit.Limiter
}

// buildOptions applies opts in order; the last of two that set the same
// thing wins.
func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLogger sends the node's events (members joining and leaving, peers'
// reports applied or refused) to l; by default they are discarded.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegistry registers the threetier_balancer_cluster_* metrics with
// reg; by default they go nowhere.
func WithRegistry(reg prometheus.Registerer) Option { return func(o *options) { o.registry = reg } }

// WithRateLimiter shares l, a front door's table of client keys
// (balancer.Proxy.RateLimiter), with the peers: the requests each node
// accepts per key, and blocks, reach every peer within a tenth of a
// second, so that a client is limited by the cluster as one. A nil l is no
// limiter.
func WithRateLimiter(l *ratelimit.Limiter) Option { return func(o *options) { o.limiter = l } }
