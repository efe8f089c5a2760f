// Package balancer is client-side load balancing over the instances of one
// upstream. In the classic three-tier layout a pair of load balancers sits
// between every two tiers; here every caller balances itself: the web tier
// over the app instances, the app tier over its HTTP dependencies, a Go
// client over the front doors. There is no extra hop that can fail alone.
//
// A Pool is an http.RoundTripper: swap it into any http.Client (or
// httputil.ReverseProxy) and each request goes to one healthy endpoint,
// chosen by a policy (smooth weighted round robin, least request, P2C with
// peak EWMA latency, consistent hashing with bounded load, first, random).
// Endpoints are checked actively (HTTP health checks with rise and fall) and
// passively (consecutive failures eject an endpoint for a growing time);
// new and recovered endpoints ramp up through slow start; failed requests
// are retried on another endpoint when that is safe, within a retry budget.
//
// A Pool is also a tier.Tier: between Start and Stop it runs its health
// checks and its discovery (a static list, or DNS A/AAAA and SRV records as
// Kubernetes headless Services and Consul publish them). Without Start it
// balances over its static endpoints, all assumed healthy, and still ejects
// the ones that fail. It is a tier.Checker too: ready while some endpoint
// can take traffic.
//
// When no endpoint can take a request, RoundTrip fails with an error that
// matches ErrNoEndpoint; servers answer it with WriteUnavailable (503
// problem+json with Retry-After), and ProxyErrorHandler does that and the
// rest for an httputil.ReverseProxy over a pool.
//
// Snapshot, Status and StatusHandler show each endpoint's state; the
// threetier_balancer_* metrics go to the registry given WithRegistry.
//
// A Proxy is a front door over pools. Two packages beside this one
// complete it, and only a front door links them: balancer/cluster joins
// front doors so that they share what they learn of the endpoints (through
// Pool.Observe and Pool.ApplyPeers) and their rate limits, and
// balancer/stats serves a node's stats page and runtime API.
package balancer

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threetier/threetier/balancer/internal/h1"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/internal/retry"
	"github.com/threetier/threetier/tier"
)

var (
	_ tier.Tier         = (*Pool)(nil)
	_ tier.Checker      = (*Pool)(nil)
	_ http.RoundTripper = (*Pool)(nil)
)

// Pool balances requests over the endpoints of one upstream. It is safe for
// concurrent use; build it with New.
type Pool struct {
	cfg       Config
	log       *slog.Logger
	transport http.RoundTripper
	// fast is the pool's connections for the front door's fast path; nil
	// when the pool was given a transport of its own, whose requests only
	// the net/http path can send.
	fast      *h1.Upstream
	ownedTr   interface{ CloseIdleConnections() } // closed on Stop when the pool made it
	discovery Discoverer
	hashKey   hashKey
	retryOn   [600]bool
	metrics   *metrics
	budget    *retry.Budget
	tracer    *attemptTracer // nil: no spans
	// resolveNow asks the discovery loop to run early (an endpoint failed
	// to connect); buffered, never blocks.
	resolveNow chan struct{}

	// The request path reads only these atomics.
	policy   Policy
	table    atomic.Pointer[table]
	rr       atomic.Uint64
	inflight atomic.Int64
	// clock is the time of the latest response, to a millisecond: the
	// "now" of latency decay, without a clock read in every pick.
	clock atomic.Int64

	mu       sync.Mutex // guards what follows, and building tables
	eps      []*endpoint
	lastRing *ring
	timer    *time.Timer
	timerAt  int64
	run      *runState // non-nil between Start and Stop
	// observers are told of endpoint state changes (Observe);
	// called with mu held, off the request path.
	observers []*observer
}

// New builds a pool from cfg. It returns a *tier.ConfigError (or several,
// joined) for a bad setting, and an error when there is no endpoint and no
// discovery to find one.
func New(cfg Config, opts ...Option) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o, err := buildOptions("New", poolOptions, opts)
	if err != nil {
		return nil, err
	}
	if o.discovery == nil && cfg.Discovery != "" {
		o.discovery, _ = ParseDiscovery(cfg.Discovery)
	}
	if len(cfg.Endpoints)+len(cfg.Backups) == 0 && o.discovery == nil {
		return nil, &tier.ConfigError{Field: "Endpoints", Problem: "no endpoints and no discovery", Allowed: "one or more base URLs, or WithDiscovery"}
	}
	p := &Pool{
		cfg:       cfg,
		log:       obs.Logger(o.logger).With("pool", cfg.Name),
		transport: o.transport,
		discovery: o.discovery,
		policy:    cfg.Policy,
		tracer:    newAttemptTracer(o.tracer, cfg.Name),

		resolveNow: make(chan struct{}, 1),
	}
	if p.transport == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		tr.MaxIdleConns = 0
		tr.DialContext = (&net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = cfg.ConnectTimeout
		if name := tlsServerName(cfg, o.discovery); name != "" {
			tr.TLSClientConfig = &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12}
		}
		lean := h1.NewTransport(tr, cfg.ConnectTimeout, func(r *http.Request) bool { return isIdempotent((*stdRequest)(r)) })
		p.transport, p.ownedTr = lean, lean
		p.fast = h1.NewUpstream(cfg.ConnectTimeout, tlsServerName(cfg, o.discovery))
	}
	if cfg.HashKey != "" {
		p.hashKey, _ = parseHashKey(cfg.HashKey)
	}
	for _, s := range cfg.Retry.On {
		p.retryOn[s] = true
	}
	p.rr.Store(rand.Uint64()) // so that clients started together do not all begin with the same endpoint
	p.budget = retry.NewBudget(cfg.Retry.BudgetRatio, cfg.Retry.BudgetMinPerSecond)
	for _, list := range []struct {
		urls   []string
		backup bool
	}{{cfg.Endpoints, false}, {cfg.Backups, true}} {
		for _, raw := range list.urls {
			u, _ := parseEndpointURL(raw)
			if p.find(u.String()) != nil {
				return nil, &tier.ConfigError{Field: "Endpoints", Value: raw, Problem: "listed twice"}
			}
			p.eps = append(p.eps, newEndpoint(u, 1, list.backup, true, cfg.EWMADecay))
		}
	}
	m, err := newMetrics(p, o.registry)
	if err != nil {
		return nil, fmt.Errorf("balancer %q: metrics: %w", cfg.Name, err)
	}
	p.metrics = m
	p.mu.Lock()
	p.rebuild()
	p.mu.Unlock()
	return p, nil
}

// tlsServerName is the name https endpoints are verified against:
// Config.TLSServerName, or the name DNS discovery looks up (its SRV
// service and protocol labels dropped), or "" for each endpoint's own host.
func tlsServerName(cfg Config, d Discoverer) string {
	if cfg.TLSServerName != "" {
		return cfg.TLSServerName
	}
	dns, ok := d.(*DNS)
	if !ok || dns.Scheme != "https" {
		return ""
	}
	name := dns.Host
	if dns.SRV {
		for strings.HasPrefix(name, "_") {
			_, name, _ = strings.Cut(name, ".")
		}
	}
	return strings.TrimSuffix(name, ".")
}

// Name returns Config.Name.
func (p *Pool) Name() string { return p.cfg.Name }

// Config returns the pool's configuration with the defaults filled in.
func (p *Pool) Config() Config { return p.cfg }

// Client returns an *http.Client whose requests the pool balances. Request
// URLs name the upstream by any host ("http://app/orders"); the pool puts in
// the scheme and host of the endpoint it picks.
func (p *Pool) Client() *http.Client { return &http.Client{Transport: p} }

// Check is the pool's readiness: nil when at least one endpoint can take
// traffic on its own merit (panic routing does not count).
func (p *Pool) Check(context.Context) error {
	if p.table.Load().healthy > 0 {
		return nil
	}
	return &NoEndpointError{Pool: p.cfg.Name, RetryAfter: p.retryAfter()}
}

// find returns the endpoint with the given key; p.mu held.
func (p *Pool) find(key string) *endpoint {
	for _, e := range p.eps {
		if e.key == key {
			return e
		}
	}
	return nil
}

// rebuild publishes a new table and arms the timer for its next change;
// p.mu held.
func (p *Pool) rebuild() {
	now := time.Now().UnixNano()
	t, next := p.buildTable(p.eps, now)
	p.table.Store(t)
	if next == 0 || (p.timer != nil && p.timerAt != 0 && p.timerAt <= next && p.timerAt > now) {
		return
	}
	p.timerAt = next
	d := time.Duration(next - now)
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.onTimer)
	} else {
		p.timer.Reset(d)
	}
}

func (p *Pool) onTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timerAt = 0
	p.rebuild()
}

// retryAfter is how long until the first ejected endpoint comes back, or a
// second when nothing is known.
func (p *Pool) retryAfter() time.Duration {
	if at := p.table.Load().backAt; at != 0 {
		if d := time.Until(time.Unix(0, at)); d > 0 {
			return d
		}
	}
	return time.Second
}

// Add puts an endpoint in the pool at run time. It takes traffic at once
// (through slow start when configured), or, while health checks run, once
// its first check passes.
func (p *Pool) Add(ep Endpoint) error {
	return p.add(ep, true)
}

func (p *Pool) add(ep Endpoint, static bool) error {
	u, err := parseEndpointURL(ep.URL)
	if err != nil {
		return &tier.ConfigError{Field: "Endpoint.URL", Value: ep.URL, Problem: err.Error(), Allowed: "http://host:port or https://host:port"}
	}
	w, err := checkWeight(ep.Weight)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.find(u.String()) != nil {
		return fmt.Errorf("balancer %q: endpoint %s already in the pool", p.cfg.Name, u)
	}
	e := newEndpoint(u, w, ep.Backup, static, p.cfg.EWMADecay)
	p.admit(e)
	p.rebuild()
	p.log.Info("endpoint added", "endpoint", e.key, "weight", w, "backup", ep.Backup)
	return nil
}

func checkWeight(w int) (int, error) {
	if w == 0 {
		return 1, nil
	}
	if w < 0 || w > MaxWeight {
		return 0, &tier.ConfigError{Field: "Endpoint.Weight", Value: fmt.Sprint(w), Problem: "out of range", Allowed: fmt.Sprintf("1 to %d, or 0 for 1", MaxWeight)}
	}
	return w, nil
}

// warm starts e's slow start, when configured and when other endpoints
// are serving (with nobody to share with, there is nothing to ramp).
func (p *Pool) warm(e *endpoint) {
	if p.cfg.SlowStart > 0 && p.table.Load() != nil && p.table.Load().healthy > 0 {
		e.warmFrom.Store(time.Now().UnixNano())
	}
}

// admit puts a new endpoint in the pool; p.mu held. While health checks
// run, it takes no traffic until its first check passes.
func (p *Pool) admit(e *endpoint) {
	p.warm(e)
	p.eps = append(p.eps, e)
	if p.run != nil {
		if p.cfg.Health.Path != "" {
			e.down.Store(true)
		}
		p.run.watch(p, e)
	}
}

// SetWeight changes an endpoint's weight (1 to MaxWeight; to stop its
// traffic, Drain it).
func (p *Pool) SetWeight(rawURL string, weight int) error {
	if weight == 0 {
		return &tier.ConfigError{Field: "weight", Value: "0", Problem: "out of range; Drain stops an endpoint's traffic", Allowed: fmt.Sprintf("1 to %d", MaxWeight)}
	}
	w, err := checkWeight(weight)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e, err := p.lookup(rawURL)
	if err != nil {
		return err
	}
	e.weight.Store(int32(w))
	p.rebuild()
	return nil
}

func (p *Pool) lookup(rawURL string) (*endpoint, error) {
	u, err := parseEndpointURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("balancer %q: %s: %w", p.cfg.Name, rawURL, ErrUnknownEndpoint)
	}
	if e := p.find(u.String()); e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("balancer %q: %s: %w", p.cfg.Name, rawURL, ErrUnknownEndpoint)
}

// Drain stops sending new requests to an endpoint and waits until the ones
// in flight (their response bodies included) are done, or ctx ends. The
// endpoint stays in the pool, drained, until Remove or Undrain.
func (p *Pool) Drain(ctx context.Context, rawURL string) error {
	p.mu.Lock()
	e, err := p.lookup(rawURL)
	if err == nil {
		e.draining.Store(true)
		p.rebuild()
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	return waitIdle(ctx, e)
}

// Undrain lets a drained endpoint take requests again.
func (p *Pool) Undrain(rawURL string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, err := p.lookup(rawURL)
	if err != nil {
		return err
	}
	if e.draining.Swap(false) {
		p.warm(e)
		p.rebuild()
	}
	return nil
}

// Remove drains an endpoint (see Drain) and then forgets it. When ctx ends
// first, the endpoint is forgotten anyway and ctx's error returned; the
// requests still in flight run to their end.
func (p *Pool) Remove(ctx context.Context, rawURL string) error {
	err := p.Drain(ctx, rawURL)
	if err != nil && ctx.Err() == nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, lerr := p.lookup(rawURL); lerr == nil {
		p.forget(e)
	}
	return err
}

// forget drops e from the pool and publishes the change; p.mu held.
func (p *Pool) forget(e *endpoint) {
	p.drop(e)
	p.rebuild()
}

// drop takes e out of the pool's list without building a new table, for
// callers that change several endpoints at once; p.mu held.
func (p *Pool) drop(e *endpoint) {
	e.removed.Store(true)
	p.eps = slices.DeleteFunc(p.eps, func(x *endpoint) bool { return x == e })
	if p.run != nil {
		p.run.unwatch(e)
	}
	p.log.Info("endpoint removed", "endpoint", e.key)
}

// waitIdle returns when e has nothing in flight, or with ctx's error.
func waitIdle(ctx context.Context, e *endpoint) error {
	if e.inflight.Load() == 0 {
		return nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for e.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s: %d requests still in flight: %w", e.key, e.inflight.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
