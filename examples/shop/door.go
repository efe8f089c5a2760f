package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/cluster"
	"github.com/threetier/threetier/balancer/stats"
	"github.com/threetier/threetier/tier"
)

// doorSpec is what one front door is made of.
type doorSpec struct {
	name     string
	pool     balancer.Config
	discover balancer.Discoverer // nil: the pool's own endpoints or DNS
	proxy    balancer.ProxyConfig
	// accessLog makes the proxy log every request, as HAProxy does.
	accessLog bool
	cluster   *cluster.Config // nil: no cluster
	stats     stats.Config    // no Listen: no admin listener
	// reg takes the node's metrics; the admin listener serves metrics.
	reg     prometheus.Registerer
	metrics *prometheus.Registry
}

// door is one front-door node: the pool over the web tier, the node's
// place in the cluster, the proxy on its listener, and the admin listener.
type door struct {
	pool    *balancer.Pool
	cluster *cluster.Cluster // nil without a cluster
	proxy   *balancer.Proxy
	stats   *stats.Stats // nil without an admin listener
}

// newDoor builds the node; spans go to tp. The proxy answers /healthz and
// /readyz on its own listener, as HAProxy's monitor-uri does: a probe that
// can only reach the public port (a Kubernetes Service, a cloud load
// balancer, keepalived on another machine) learns whether this node can
// take traffic.
func newDoor(s doorSpec, log *slog.Logger, tp trace.TracerProvider) (*door, error) {
	opts := []balancer.Option{balancer.WithLogger(log), balancer.WithRegistry(s.reg), balancer.WithTracerProvider(tp)}
	popts := opts
	if s.discover != nil {
		popts = append(popts, balancer.WithDiscovery(s.discover))
	}
	pool, err := balancer.New(s.pool, popts...)
	if err != nil {
		return nil, err
	}
	pools := []*balancer.Pool{pool}
	d := &door{pool: pool}
	setIfZero(&s.proxy.HealthPath, "/healthz")
	setIfZero(&s.proxy.ReadyPath, "/readyz")
	pxOpts := opts
	if s.accessLog {
		pxOpts = append(pxOpts, balancer.WithAccessLog(tier.AccessLogConfig{}))
	}
	if d.proxy, err = balancer.NewProxy(s.proxy, pools, pxOpts...); err != nil {
		return nil, err
	}
	statsOpts := []stats.Option{stats.WithLogger(log), stats.WithRegistry(s.metrics), stats.WithHealth(d.proxy.Health())}
	if s.cluster != nil {
		if d.cluster, err = cluster.New(*s.cluster, pools, cluster.WithLogger(log), cluster.WithRegistry(s.reg)); err != nil {
			return nil, err
		}
		d.proxy.Health().Register("cluster", d.cluster)
		statsOpts = append(statsOpts, stats.WithClusterView(d.cluster))
	}
	// The admin listener: the stats page (with the cluster view), its JSON
	// and runtime API, the metrics, and the node's /healthz and /readyz for
	// keepalived's check script. It names internal addresses: keep it on
	// loopback or a management network.
	if s.stats.Listen != "" {
		if d.stats, err = stats.New(s.stats, pools, statsOpts...); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// tiers lists the node's parts in their start order. The admin listener
// starts last and so stops first: on shutdown its /readyz fails before the
// proxy stops, and keepalived moves the address while the proxy drains.
func (d *door) tiers() []tier.Tier {
	ts := []tier.Tier{d.pool}
	if d.cluster != nil {
		ts = append(ts, d.cluster)
	}
	ts = append(ts, d.proxy)
	if d.stats != nil {
		ts = append(ts, d.stats)
	}
	return ts
}
