package balancer

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/balancer/ratelimit"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// proxyLimits is a front door's rate and connection limits: the table,
// what the client key is, and the metrics of refusals.
type proxyLimits struct {
	limiter      *ratelimit.Limiter
	key          rateKeyRule
	limited      *prometheus.CounterVec // threetier_proxy_rate_limited_total{route}
	connsRefused prometheus.Counter     // threetier_proxy_connections_refused_total
}

// newLimits builds the node's limits when ProxyConfig sets any, and the
// server options that hold connections to them; nothing when none is set,
// so that a door without limits pays nothing for them.
func (px *Proxy) newLimits(reg prometheus.Registerer) ([]tier.ServerOption, error) {
	cfg := px.cfg
	policies := routePolicies(cfg.Routes)
	if cfg.RateLimit <= 0 && cfg.ConnLimit <= 0 && len(policies) == 0 {
		return nil, nil
	}
	l, err := ratelimit.New(ratelimit.Config{Rate: cfg.RateLimit, Burst: cfg.RateBurst, ConnLimit: cfg.ConnLimit, MaxKeys: cfg.RateKeys,
		Policies: policies})
	if err != nil {
		return nil, &tier.ConfigError{Field: "RateLimit", Value: fmt.Sprint(cfg.RateLimit), Problem: err.Error()}
	}
	key, _ := parseRateKey(cfg.RateKey) // validated
	pl := &proxyLimits{limiter: l, key: key}
	reg = obs.Registerer(reg)
	name := func(n string) string { return prometheus.BuildFQName(obs.Namespace, proxyMetricsSubsystem, n) }
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name("rate_limited_total"),
		Help: "Requests refused (429) for going over the rate limit of their client key, or for a block, by route."}, []string{"route"})
	if pl.limited, err = obs.RegisterShared(reg, limited); err != nil {
		return nil, fmt.Errorf("proxy %q: metrics: %w", cfg.Name, err)
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: name("connections_refused_total"),
		Help: "Connections reset as they were accepted: their client address was over ConnLimit, or blocked."})
	if pl.connsRefused, err = obs.RegisterShared(reg, refused); err != nil {
		return nil, fmt.Errorf("proxy %q: metrics: %w", cfg.Name, err)
	}
	px.limits = pl
	if cfg.ConnLimit <= 0 {
		return nil, nil
	}
	return []tier.ServerOption{tier.WithConnAdmission(px.admitConn)}, nil
}

// routePolicies are the routes' own rate limits, one per pool named (the
// policy's name), in the order of the routes: the limiter's Policies, so
// that a route's is its place here plus one.
func routePolicies(routes []Route) []ratelimit.Policy {
	var ps []ratelimit.Policy
	for _, r := range routes {
		if r.RateLimit > 0 && !slices.ContainsFunc(ps, func(p ratelimit.Policy) bool { return p.Name == r.Pool }) {
			ps = append(ps, ratelimit.Policy{Name: r.Pool, Rate: r.RateLimit, Burst: r.RateBurst})
		}
	}
	return ps
}

// routePolicy is the index of r's policy in the limiter: 0 for the
// door's limit, its place in routePolicies plus one for its own.
func routePolicy(routes []Route, r Route) int {
	if r.RateLimit <= 0 {
		return 0
	}
	return 1 + slices.IndexFunc(routePolicies(routes), func(p ratelimit.Policy) bool { return p.Name == r.Pool })
}

// RateLimiter returns the node's table of client keys, nil when
// ProxyConfig sets no RateLimit, ConnLimit nor a route's RateLimit: give
// it to the cluster (cluster.WithRateLimiter) to count across the cluster,
// and to the stats page (stats.WithRateLimiter) to show the busiest
// clients and block keys.
func (px *Proxy) RateLimiter() *ratelimit.Limiter {
	if px.limits == nil {
		return nil
	}
	return px.limits.limiter
}

// rateRefusal is the answer to a request over its limit, whichever engine
// writes it.
type rateRefusal struct {
	status     int
	detail     string
	headers    [][2]string // RateLimit-Policy and RateLimit
	retryAfter time.Duration
}

// admit takes a token of key's bucket under policy for a request on rt
// (nil: no route). It returns ok, or the refusal to answer with; the
// refusal is counted in threetier_proxy_rate_limited_total. Both engines
// call it.
func (px *Proxy) admit(policy int, key string, rt *route) (bool, rateRefusal) {
	d := px.limits.limiter.AllowPolicy(policy, key, time.Now())
	if d.Allowed {
		return true, rateRefusal{}
	}
	routeName := ""
	if rt != nil {
		routeName = rt.pool.Name()
	}
	px.limits.limited.WithLabelValues(routeName).Inc()
	rf := rateRefusal{status: http.StatusTooManyRequests, headers: d.Headers(), retryAfter: d.RetryAfter,
		detail: "too many requests from this client; try again after Retry-After"}
	if d.Blocked {
		rf.detail = "this client is blocked"
		if d.RetryAfter > 0 {
			rf.detail += "; try again after Retry-After"
		}
	}
	return false, rf
}

// problem is the refusal as a problem+json answer.
func (rf rateRefusal) problem() *tier.Problem {
	p := tier.NewProblem(rf.status, rf.detail)
	p.RetryAfter = rf.retryAfter
	return p
}

// limitRequest is the rate limit's answer to a request, whichever engine
// serves it (src reads its client key): ok, or the refusal to write.
// A route with a RateLimit of its own counts under its policy, others
// under the door's. Without a rate limit nor a block it costs a nil check
// and an atomic load.
func (px *Proxy) limitRequest(src rateKeySource, rt *route) (bool, rateRefusal) {
	if px.limits == nil {
		return true, rateRefusal{}
	}
	policy := 0
	if rt != nil {
		policy = rt.ratePolicy
	}
	if policy == 0 && px.cfg.RateLimit <= 0 && !px.limits.limiter.HasBlocks() {
		return true, rateRefusal{}
	}
	return px.admit(policy, px.rateKey(src), rt)
}

// admitHTTP applies the rate limit to a net/http request: true lets it
// go on; false means it was answered with a 429.
func (px *Proxy) admitHTTP(w http.ResponseWriter, r *http.Request, id string, rt *route) bool {
	ok, rf := px.limitRequest(httpKeySource{r}, rt)
	if ok {
		return true
	}
	h := w.Header()
	for _, kv := range rf.headers {
		h.Set(kv[0], kv[1])
	}
	serveProblem(w, r, id, rf.problem())
	return false
}

// admitConn is the listener's connection admission: a client address
// over ConnLimit, or blocked, is refused. Trusted proxies are never
// capped: they carry many clients' connections.
func (px *Proxy) admitConn(remote netip.Addr) (func(), bool) {
	if px.trusts(remote) {
		return nil, true
	}
	key := remote.String()
	if !px.limits.limiter.Acquire(key, time.Now()) {
		px.limits.connsRefused.Inc()
		return nil, false
	}
	return func() { px.limits.limiter.Release(key) }, true
}

// rateKeyRule is what a client key is (ProxyConfig.RateKey): a header's
// value, a cookie's, or (both empty) the client's address.
type rateKeyRule struct {
	header string // canonical
	cookie string
}

// parseRateKey reads "", "header:Name" or "cookie:Name".
func parseRateKey(s string) (rateKeyRule, error) {
	if s == "" {
		return rateKeyRule{}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n:;,=\"") {
		return rateKeyRule{}, errors.New("not a key")
	}
	switch strings.ToLower(kind) {
	case "header":
		return rateKeyRule{header: textproto.CanonicalMIMEHeaderKey(name)}, nil
	case "cookie":
		return rateKeyRule{cookie: name}, nil
	}
	return rateKeyRule{}, errors.New("not a key")
}

// rateKeySource is what a client key is read from, whichever engine
// serves the request.
type rateKeySource interface {
	// RemoteAddr is the connection's peer, "ip:port".
	RemoteAddr() string
	// Header returns a request header's values (name canonical).
	Header(name string) []string
	// Cookie returns a cookie's value, or "".
	Cookie(name string) string
}

// rateKey is the request's client key under ProxyConfig.RateKey; a
// request without the header or cookie named is counted by its address.
func (px *Proxy) rateKey(src rateKeySource) string {
	k := px.limits.key
	switch {
	case k.header != "":
		if v := src.Header(k.header); len(v) > 0 && v[0] != "" {
			return "h:" + v[0]
		}
	case k.cookie != "":
		if v := src.Cookie(k.cookie); v != "" {
			return "c:" + v
		}
	}
	return px.clientAddress(src.RemoteAddr(), src.Header("X-Forwarded-For"))
}

// clientAddress is the client's address: the connection's peer, or, when
// that is a trusted proxy, the last address of X-Forwarded-For that is not
// a trusted proxy's (the first one a trusted proxy vouches for).
func (px *Proxy) clientAddress(remote string, forwardedFor []string) string {
	ip := clientIP(remote)
	if strings.HasPrefix(ip, "::ffff:") {
		// An IPv4 client of a dual-stack listener: the same key as the
		// connection admission's (and an operator's block) use.
		if a, err := netip.ParseAddr(ip); err == nil {
			ip = a.Unmap().String()
		}
	}
	if len(forwardedFor) == 0 || !px.trustedPeer(remote) {
		return ip
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		hops := forwardedFor[i]
		for hops != "" {
			var hop string
			if j := strings.LastIndexByte(hops, ','); j >= 0 {
				hops, hop = hops[:j], hops[j+1:]
			} else {
				hops, hop = "", hops
			}
			hop = strings.TrimSpace(hop)
			a, err := netip.ParseAddr(hop)
			if err != nil {
				if ap, perr := netip.ParseAddrPort(hop); perr == nil {
					a, err = ap.Addr(), nil
				}
			}
			if err != nil {
				return ip // past what a trusted proxy wrote: the last one vouched for
			}
			if !px.trusts(a) {
				return a.Unmap().String()
			}
			ip = a.Unmap().String()
		}
	}
	return ip
}

// trusts reports whether a is in TrustedProxies.
func (px *Proxy) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range px.trusted {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// httpKeySource reads a client key from a net/http request.
type httpKeySource struct{ r *http.Request }

func (s httpKeySource) RemoteAddr() string          { return s.r.RemoteAddr }
func (s httpKeySource) Header(name string) []string { return s.r.Header[name] }
func (s httpKeySource) Cookie(name string) string {
	if c, err := s.r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}
