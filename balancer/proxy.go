package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/certreload"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

var (
	_ tier.Tier    = (*Proxy)(nil)
	_ tier.Failer  = (*Proxy)(nil)
	_ tier.Checker = (*Proxy)(nil)
	_ http.Handler = (*Proxy)(nil)
)

// Proxy is a front-door node: a reverse proxy over one or more pools, what
// the seed's HAProxy pair is made of. It is an http.Handler (mount it in any
// server, as the web tier's forwarding does) and a tier.Tier with its own
// listener: HTTP/1.1, or HTTPS with HTTP/2 and certificates reloaded from
// their files, bounded client connections, header and body limits.
//
// Each request goes to the pool of the first matching Route (or the default
// pool) through the pool's RoundTrip, so it gets the pool's balancing,
// health, ejection and retries. On the way, the node passes 1xx responses
// (100 Continue, 103 Early Hints) as they come, streams request and
// response bodies both ways as they arrive (flushing streamed responses
// such as SSE), tunnels Upgrade (WebSocket) connections, removes hop-by-hop
// headers, sets X-Forwarded-For, -Proto, -Host and Forwarded, and passes the
// request ID, traceparent and deadline on (what is left of ResponseTimeout,
// in tier.HeaderTimeout). Failures are problem+json: 502, 503 with
// Retry-After, 504, 413, and 500 for a panic (which cuts the connection
// instead once the answer has begun, as net/http does).
//
// HTTP/1.1 requests are served on fasthttp by default (ProxyConfig.Engine):
// those it holds whole, with bodies of a known length up to
// tier.FastMaxBody and no Upgrade or Expect, take the fast path: the same
// rules on fasthttp's types, over the pool's own connections; the rest,
// and HTTP/2, go through ServeHTTP. A pool built WithTransport keeps the
// whole node on net/http, since only that path can use its transport.
//
// Requests are counted in the request metrics every HTTP tier has:
// threetier_proxy_requests_total{method,route,code},
// threetier_proxy_request_duration_seconds{method,route},
// threetier_proxy_requests_in_flight and threetier_proxy_response_bytes_total,
// where route is the name of the pool the request went to ("unmatched" when
// no route took it) and code 499 a client that left before any answer. The
// pools' own threetier_balancer_* metrics count the attempts behind them.
type Proxy struct {
	cfg     ProxyConfig
	log     *slog.Logger
	routes  []route
	def     *route
	trusted []netip.Prefix
	metrics *obs.HTTPMetrics
	access  *accesslog.Log // nil unless WithAccessLog
	health  *tier.Health
	probes  probes
	certs   *certreload.Reloader
	tunnels tunnels
	limits  *proxyLimits // nil without RateLimit or ConnLimit

	main     *tier.HTTPServer
	redirect *tier.HTTPServer
}

// route is a Route with its pool found and its matching precomputed.
type route struct {
	Route
	pool   *Pool
	host   string // lower case; "" any
	suffix bool   // host is "*.x": match any subdomain of x
	bare   string // PathPrefix without its final slash, also matched
	// ratePolicy is the index of the route's own rate limit in the
	// limiter (see routePolicies); 0 for the door's.
	ratePolicy int
}

// NewProxy builds a front-door node over pools (at least one), routed by
// cfg.Routes. Pools are named by their Config.Name; their lifecycle stays
// with the caller (run them as tiers before the proxy, so that their health
// checks run). It returns a *tier.ConfigError (or several, joined) for a bad
// setting.
func NewProxy(cfg ProxyConfig, pools []*Pool, opts ...Option) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(pools) == 0 {
		return nil, &tier.ConfigError{Field: "pools", Problem: "a proxy needs at least one pool"}
	}
	cfg = cfg.withDefaults()
	o, err := buildOptions("NewProxy", proxyOptions, opts)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]*Pool, len(pools))
	for _, p := range pools {
		if byName[p.Name()] != nil {
			return nil, &tier.ConfigError{Field: "pools", Value: p.Name(), Problem: "two pools have this name"}
		}
		byName[p.Name()] = p
	}
	px := &Proxy{cfg: cfg, log: obs.Logger(o.logger).With("proxy", cfg.Name), health: &tier.Health{}}
	if o.access != nil {
		access := *o.access
		if access.Fields == 0 {
			access.Fields = proxyAccessFields
		}
		if px.access, err = accesslog.New(access, px.log); err != nil {
			return nil, fmt.Errorf("proxy %q: %w", cfg.Name, err)
		}
	}
	m, err := obs.NewHTTPMetrics(proxyMetricsSubsystem, o.registry)
	if err != nil {
		return nil, fmt.Errorf("proxy %q: metrics: %w", cfg.Name, err)
	}
	px.metrics = m
	var errs []error
	for i, r := range cfg.Routes {
		p := byName[r.Pool]
		if p == nil {
			errs = append(errs, &tier.ConfigError{Field: fmt.Sprintf("Routes[%d].Pool", i), Value: r.Pool, Problem: "no pool has this name"})
			continue
		}
		px.routes = append(px.routes, px.newRoute(r, p))
	}
	switch cfg.DefaultPool {
	case "-":
	case "":
		def := px.newRoute(Route{Pool: pools[0].Name()}, pools[0])
		px.def = &def
	default:
		p := byName[cfg.DefaultPool]
		if p == nil {
			errs = append(errs, &tier.ConfigError{Field: "DefaultPool", Value: cfg.DefaultPool, Problem: "no pool has this name"})
			break
		}
		def := px.newRoute(Route{Pool: p.Name()}, p)
		px.def = &def
	}
	for _, raw := range cfg.TrustedProxies {
		n, _ := parsePrefix(raw)
		px.trusted = append(px.trusted, n)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, p := range pools {
		px.health.Register("pool "+p.Name(), p)
	}
	px.probes = newProbes(cfg, px.health)

	srv := &http.Server{
		Addr:              cfg.Listen,
		Handler:           px,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(px.log.Handler(), slog.LevelDebug),
	}
	if cfg.TLSCert != "" {
		if px.certs, err = certreload.New(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, fmt.Errorf("proxy %q: %w", cfg.Name, err)
		}
		srv.TLSConfig = px.certs.TLSConfig()
	}
	admission, err := px.newLimits(o.registry)
	if err != nil {
		return nil, err
	}
	limits := append([]tier.ServerOption{tier.WithLimits(cfg.Limits), tier.WithServerLogger(px.log)}, admission...)
	mainOpts := append(limits, tier.WithDrain(px.health, cfg.DrainDelay), tier.WithTracerProvider(o.tracer))
	if px.cfg.Engine == EngineFast {
		for _, p := range pools {
			if p.fast == nil {
				px.log.Info("serving on net/http: a pool has a transport of its own", "pool", p.Name())
				px.cfg.Engine = EngineStd
				break
			}
		}
	}
	if px.cfg.Engine == EngineFast {
		mainOpts = append(mainOpts, withFastEngine(px.serveFast)...)
	}
	px.main = tier.NewHTTPServer(cfg.Name, srv, mainOpts...)
	if cfg.RedirectListen != "" {
		px.redirect = tier.NewHTTPServer(cfg.Name+"-redirect", &http.Server{
			Addr:              cfg.RedirectListen,
			Handler:           httpedge.RedirectHTTPS(px.main.Addr),
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			MaxHeaderBytes:    cfg.MaxHeaderBytes,
		}, limits...)
	}
	return px, nil
}

func (px *Proxy) newRoute(r Route, p *Pool) route {
	rt := route{Route: r, pool: p, host: strings.ToLower(r.Host)}
	rt.ratePolicy = routePolicy(px.cfg.Routes, r)
	if h, ok := strings.CutPrefix(rt.host, "*"); ok {
		rt.host, rt.suffix = h, true // ".example.com"
	}
	if strings.HasSuffix(r.PathPrefix, "/") {
		rt.bare = strings.TrimSuffix(r.PathPrefix, "/")
	}
	return rt
}

// Name returns ProxyConfig.Name.
func (px *Proxy) Name() string { return px.cfg.Name }

// Config returns the configuration with the defaults filled in.
func (px *Proxy) Config() ProxyConfig { return px.cfg }

// Health returns the node's readiness checks: one per pool.
func (px *Proxy) Health() *tier.Health { return px.health }

// Check is the node's readiness: every pool has an endpoint that can take
// traffic.
func (px *Proxy) Check(ctx context.Context) error {
	if rep := px.health.Check(ctx); !rep.Ready {
		return fmt.Errorf("proxy %q: not ready: %s", px.cfg.Name, strings.Join(rep.Failed(), ", "))
	}
	return nil
}

// Addr returns the listener's address once started, or the configured one.
func (px *Proxy) Addr() string { return px.main.Addr() }

// RedirectAddr returns the HTTP-to-HTTPS listener's address, or "".
func (px *Proxy) RedirectAddr() string {
	if px.redirect == nil {
		return ""
	}
	return px.redirect.Addr()
}

// Reload reads the TLS certificate and key files again (for SIGHUP); a
// pair that fails to load is reported and the current one stays.
func (px *Proxy) Reload() error {
	if px.certs == nil {
		return nil
	}
	return px.certs.Reload()
}

// Start binds the listeners and begins serving.
func (px *Proxy) Start(ctx context.Context) error {
	if err := px.main.Start(ctx); err != nil {
		return fmt.Errorf("proxy %q: %w", px.cfg.Name, err)
	}
	if px.redirect != nil {
		if err := px.redirect.Start(ctx); err != nil {
			_ = px.main.Stop(ctx)
			return fmt.Errorf("proxy %q: redirect listener: %w", px.cfg.Name, err)
		}
	}
	px.log.Info("front door listening", "addr", px.Addr(), "tls", px.certs != nil)
	return nil
}

// Failed yields an error if the listener stops serving on its own.
func (px *Proxy) Failed() <-chan error { return px.main.Failed() }

// Drain fails /readyz and marks every answer as leaving for the drain
// delay (ProxyConfig.DrainDelay), serving all the while: the front door's
// own balancers (a Go client's pool, keepalived's check) stop sending
// before it stops accepting. See tier.Drainer.
func (px *Proxy) Drain(ctx context.Context) error { return px.main.Drain(ctx) }

// Stop drains unless Drain was called, stops accepting and lets in-flight
// requests finish until ctx ends; then it closes the tunnelled (Upgrade)
// connections, whose clients reconnect through another node.
func (px *Proxy) Stop(ctx context.Context) error {
	var errs []error
	if px.redirect != nil {
		errs = append(errs, px.redirect.Stop(ctx))
	}
	errs = append(errs, px.main.Stop(ctx))
	px.tunnels.closeAll()
	return errors.Join(errs...)
}

// ServeHTTP forwards r to the pool of its route, on the shared edge: the
// request is counted in the threetier_proxy_* request metrics (under its
// pool's name as the route) and the access log, and a panic is answered
// (see recoverPanic).
func (px *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := px.probes.handler(r.URL.Path); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	px.metrics.Begin()
	ex := &exchange{resp: answer{ResponseWriter: w}, id: httpx.AcceptRequestID(r.Header, nil)}
	rt := px.match(r.Host, r.URL.Path)
	defer px.observe(ex, r, rt, start) // also when a panic ends the request
	defer px.recoverPanic(ex, r)
	if r.Context().Err() != nil {
		// The client reset the stream (or left) before it was forwarded:
		// no endpoint is picked nor dialled for it. Counted as a 499.
		return
	}
	if rt == nil {
		px.problem(&ex.resp, r, ex.id[0], http.StatusNotFound, "no route for this host and path", 0)
		return
	}
	if !px.admitHTTP(&ex.resp, r, ex.id[0], rt) {
		return
	}
	px.forward(ex, r, rt, start)
}

// match returns the first route that takes a request for host (the Host
// header, maybe with a port) and path (decoded), or the default one.
func (px *Proxy) match(host, path string) *route {
	for i := range px.routes {
		if rt := &px.routes[i]; rt.matches(host, path) {
			return rt
		}
	}
	return px.def
}

func (rt *route) matches(host, path string) bool {
	if rt.host != "" {
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
			host = host[:i]
		}
		switch {
		case rt.suffix:
			if len(host) <= len(rt.host) || !strings.EqualFold(host[len(host)-len(rt.host):], rt.host) {
				return false
			}
		case !strings.EqualFold(host, rt.host):
			return false
		}
	}
	if rt.PathPrefix != "" {
		return strings.HasPrefix(path, rt.PathPrefix) || rt.bare != "" && path == rt.bare
	}
	return true
}
