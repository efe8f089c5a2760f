package stats

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/balancer/cluster"
	"github.com/threetier/threetier/balancer/ratelimit"
	"github.com/threetier/threetier/tier"
)

// ClusterView is what the page shows of a cluster: its members and what
// each peer sees of the endpoints. *cluster.Cluster implements it.
type ClusterView interface {
	Members() []cluster.Member
	PeerViews() []cluster.PeerView
}

// An Option sets what a Config cannot hold: code, not data.
type Option func(*options)

type options struct {
	logger   *slog.Logger
	registry prometheus.Registerer
	cluster  ClusterView
	health   *tier.Health
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

// WithLogger logs runtime actions and refused attempts to l; by default
// they are discarded.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegistry serves reg on /metrics when it is a *prometheus.Registry
// (any other Registerer cannot be gathered); without it /metrics answers
// 404.
func WithRegistry(reg prometheus.Registerer) Option { return func(o *options) { o.registry = reg } }

// WithClusterView shows v's members, and what each peer sees of the
// endpoints.
func WithClusterView(v ClusterView) Option { return func(o *options) { o.cluster = v } }

// WithHealth serves h's /healthz and /readyz on the stats listener, so
// that keepalived or Kubernetes probe the node on the port its operators
// already open.
func WithHealth(h *tier.Health) Option { return func(o *options) { o.health = h } }

// WithRateLimiter shows l, a front door's table of client keys
// (balancer.Proxy.RateLimiter): the busiest clients and the blocks, and
// the runtime API to block and unblock keys. A nil l is no limiter.
func WithRateLimiter(l *ratelimit.Limiter) Option { return func(o *options) { o.limiter = l } }
