package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

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
	// cluster, when set, gives the node's cluster configuration at Start
	// (so that one node can name another's bound address as its peer).
	cluster func() (cluster.Config, error)
	stats   stats.Config // no Listen: no admin listener
	// reg takes the node's metrics; the admin listener serves metrics.
	reg     prometheus.Registerer
	metrics *prometheus.Registry
}

// door is one front-door node: the pool over the web tier, the node's
// place in the cluster, the proxy on its listener, and the admin listener.
type door struct {
	pool    *balancer.Pool
	cluster *lazyCluster // nil without a cluster
	front   *frontDoor
	stats   *stats.Stats // nil without an admin listener
}

// newDoor builds the node; spans go to tp.
func newDoor(s doorSpec, log *slog.Logger, tp trace.TracerProvider) (*door, error) {
	if s.proxy.TLSCert != "" || s.proxy.RedirectListen != "" {
		return nil, errors.New("the shop's front door serves plain HTTP: terminate TLS in front of it, or run examples/lb, which serves HTTPS")
	}
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
	px, err := balancer.NewProxy(s.proxy, pools, opts...)
	if err != nil {
		return nil, err
	}
	if s.cluster != nil {
		d.cluster = &lazyCluster{name: "cluster@" + s.name, config: s.cluster, pools: pools,
			opts: []cluster.Option{cluster.WithLogger(log), cluster.WithRegistry(s.reg)}}
		px.Health().Register("cluster", d.cluster)
	}
	d.front = newFrontDoor(px, log, tp)
	if s.stats.Listen != "" {
		if d.stats, err = statsListener(s.stats, px, pools, s.metrics, d.cluster, log); err != nil {
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
	ts = append(ts, d.front)
	if d.stats != nil {
		ts = append(ts, d.stats)
	}
	return ts
}

// frontDoor serves a Proxy on a listener of its own that also answers
// /healthz and /readyz for the node itself, as HAProxy's monitor-uri does:
// a probe that can only reach the public port (a Kubernetes Service, a
// cloud load balancer, keepalived on another machine) learns whether this
// node can take traffic. Every other path goes through the proxy.
type frontDoor struct {
	px  *balancer.Proxy
	srv *tier.HTTPServer
}

func newFrontDoor(px *balancer.Proxy, log *slog.Logger, tp trace.TracerProvider) *frontDoor {
	cfg := px.Config()
	live, ready := px.Health().LivenessHandler(), px.Health().ReadinessHandler()
	fd := &frontDoor{px: px}
	fd.srv = tier.NewHTTPServer(cfg.Name, &http.Server{
		Addr: cfg.Listen,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/healthz":
				live.ServeHTTP(w, r)
			case "/readyz":
				ready.ServeHTTP(w, r)
			default:
				px.ServeHTTP(w, r)
			}
		}),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}, tier.WithLimits(cfg.Limits), tier.WithServerLogger(log), tier.WithDrain(px.Health(), cfg.DrainDelay), tier.WithTracerProvider(tp))
	return fd
}

// Name is the node's name.
func (fd *frontDoor) Name() string { return fd.srv.Name() }

// Addr is the bound address once started.
func (fd *frontDoor) Addr() string { return fd.srv.Addr() }

// Failed yields an error if the listener dies.
func (fd *frontDoor) Failed() <-chan error { return fd.srv.Failed() }

// Start binds the listener, held to the Proxy's Limits like the Proxy's
// own.
func (fd *frontDoor) Start(ctx context.Context) error {
	if err := fd.srv.Start(ctx); err != nil {
		return fmt.Errorf("front door %q: %w", fd.Name(), err)
	}
	return nil
}

// Drain fails /readyz and marks the node's answers as leaving for
// DrainDelay, serving all the while.
func (fd *frontDoor) Drain(ctx context.Context) error { return fd.srv.Drain(ctx) }

// Stop drains unless Drain was called, then finishes the requests in
// flight until ctx ends.
func (fd *frontDoor) Stop(ctx context.Context) error { return fd.srv.Stop(ctx) }

// statsListener is the node's admin listener: the stats page (with the
// cluster view), its JSON and runtime API, the metrics, and the node's
// /healthz and /readyz for keepalived's check script. It names internal
// addresses: keep it on loopback or a management network.
func statsListener(cfg stats.Config, px *balancer.Proxy, pools []*balancer.Pool, reg *prometheus.Registry, view *lazyCluster, log *slog.Logger) (*stats.Stats, error) {
	opts := []stats.Option{stats.WithLogger(log), stats.WithRegistry(reg), stats.WithHealth(px.Health())}
	if view != nil {
		opts = append(opts, stats.WithClusterView(view))
	}
	return stats.New(cfg, pools, opts...)
}

// lazyCluster is a cluster.Cluster built at Start, from a configuration
// known only then: in one process, the second front door's peer is the
// first one's bound gossip address. It is also the stats page's view of
// the cluster, empty until started.
type lazyCluster struct {
	name   string
	config func() (cluster.Config, error)
	pools  []*balancer.Pool
	opts   []cluster.Option

	mu sync.Mutex
	c  *cluster.Cluster
}

func (l *lazyCluster) get() *cluster.Cluster {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

// Name is "cluster@" and the node's name.
func (l *lazyCluster) Name() string { return l.name }

// Start builds the node and joins its peers.
func (l *lazyCluster) Start(ctx context.Context) error {
	cfg, err := l.config()
	if err != nil {
		return err
	}
	c, err := cluster.New(cfg, l.pools, l.opts...)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	l.c = c
	l.mu.Unlock()
	return nil
}

// Stop leaves the cluster.
func (l *lazyCluster) Stop(ctx context.Context) error {
	if c := l.get(); c != nil {
		return c.Stop(ctx)
	}
	return nil
}

// Check is the node's readiness in the cluster.
func (l *lazyCluster) Check(ctx context.Context) error {
	if c := l.get(); c != nil {
		return c.Check(ctx)
	}
	return cluster.ErrStopped
}

// LocalAddr is the bound gossip address, or "".
func (l *lazyCluster) LocalAddr() string {
	if c := l.get(); c != nil {
		return c.LocalAddr()
	}
	return ""
}

// Members lists the cluster's nodes as this one sees them.
func (l *lazyCluster) Members() []cluster.Member {
	if c := l.get(); c != nil {
		return c.Members()
	}
	return nil
}

// PeerViews lists what the peers report about the endpoints.
func (l *lazyCluster) PeerViews() []cluster.PeerView {
	if c := l.get(); c != nil {
		return c.PeerViews()
	}
	return nil
}
