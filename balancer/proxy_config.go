package balancer

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/threetier/threetier/balancer/ratelimit"
	"github.com/threetier/threetier/internal/configcheck"
	"github.com/threetier/threetier/tier"
)

// ProxyEnvPrefix is the default prefix of the front door's environment
// variables: THREETIER_PROXY_LISTEN and so on.
const ProxyEnvPrefix = tier.EnvPrefix + "PROXY_"

// ProxyConfig values of Engine.
const (
	// EngineFast serves HTTP/1.1 on github.com/valyala/fasthttp: no
	// goroutine per request, reused requests and answers. Requests it
	// cannot hold whole (uploads of unknown or large length, Expect:
	// 100-continue, Upgrade) and HTTP/2 are served by net/http on the same
	// listener.
	EngineFast = "fasthttp"
	// EngineStd serves every request on net/http.
	EngineStd = "net/http"
)

// Route values of HostHeader.
const (
	// HostPass sends the client's Host header upstream (HAProxy's way).
	HostPass = ""
	// HostEndpoint sends the endpoint's host:port as Host (nginx's
	// proxy_pass default).
	HostEndpoint = "endpoint"
)

// ProxyConfig describes one front-door node: what it listens on, how it
// routes to its pools, and what it allows a client. The zero value of every
// field is a working default, documented on the field.
type ProxyConfig struct {
	// Name names the node in logs and metrics; zero means "proxy".
	Name string `env:"NAME" json:"name,omitempty"`
	// Engine serves the listener's HTTP/1.1 requests: EngineFast (zero) or
	// EngineStd. Both give the same answers; a pool built WithTransport
	// needs EngineStd, which NewProxy then uses.
	Engine string `env:"ENGINE" json:"engine,omitempty"`
	// Listen is the address of the listener; zero means ":8080".
	Listen string `env:"LISTEN" json:"listen,omitempty"`
	// Routes send requests to pools by host and path prefix, the first match
	// winning (HAProxy's use_backend). A request no route matches goes to
	// DefaultPool.
	Routes []Route `json:"routes,omitempty"`
	// DefaultPool names the pool for requests no route matches; zero means
	// the first pool given to NewProxy. "-" means none: such requests get
	// 404.
	DefaultPool string `env:"DEFAULT_POOL" json:"default_pool,omitempty"`
	// HealthPath and ReadyPath, when set, are answered by the node itself
	// on its listener, not forwarded: liveness, and readiness from Health
	// (every pool has an endpoint to take traffic, and what else is
	// registered there), as HAProxy's monitor-uri does, for a probe that
	// can only reach the public port. Zero (or "-") means not served: a
	// door forwards every path it does not own, and owns none unless told.
	HealthPath string `env:"HEALTH_PATH" json:"health_path,omitempty"`
	ReadyPath  string `env:"READY_PATH" json:"ready_path,omitempty"`
	// TrustedProxies are the networks (CIDRs, or single addresses) whose
	// X-Forwarded-For, -Proto, -Host and Forwarded headers are kept and
	// appended to. From anyone else they are replaced: by default the node
	// is the edge and a client's claims about itself are dropped.
	TrustedProxies []string `env:"TRUSTED_PROXIES" envSeparator:"," json:"trusted_proxies,omitempty"`

	// TLSCert and TLSKey are PEM files; with both set the listener speaks
	// HTTPS (HTTP/2 and HTTP/1.1). The files are read again when they change
	// (checked at most once a second, on handshakes) and on Reload.
	TLSCert string `env:"TLS_CERT" json:"tls_cert,omitempty"`
	TLSKey  string `env:"TLS_KEY" json:"tls_key,omitempty"`
	// RedirectListen, with TLS, is a plain-HTTP listener that redirects
	// every request to HTTPS (308); zero means none.
	RedirectListen string `env:"REDIRECT_LISTEN" json:"redirect_listen,omitempty"`

	// ReadHeaderTimeout bounds reading a request's headers (slowloris);
	// zero means 10s.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT" json:"read_header_timeout,omitempty"`
	// IdleTimeout closes a keep-alive connection idle this long; zero means
	// 60s.
	IdleTimeout time.Duration `env:"IDLE_TIMEOUT" json:"idle_timeout,omitempty"`
	// ResponseTimeout is the request's deadline, end to end: it bounds the
	// wait for the upstream's response headers (504 after it), retries
	// included, and what is left of it goes upstream with each attempt in
	// tier.HeaderTimeout, so that the tiers behind answer within it. A
	// caller's own tier.HeaderTimeout may shorten it, never lengthen it.
	// Once the headers come, a response may stream for as long as it
	// lasts (SSE, downloads, WebSocket). Zero means 60s, negative means no
	// bound but the caller's.
	ResponseTimeout time.Duration `env:"RESPONSE_TIMEOUT" json:"response_timeout,omitempty"`
	// MaxHeaderBytes bounds a request's header block (431 beyond); zero
	// means 64 KiB.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" json:"max_header_bytes,omitempty"`
	// MaxBodyBytes bounds a request body (413 beyond); zero means 100 MiB,
	// negative means no bound.
	MaxBodyBytes int64 `env:"MAX_BODY_BYTES" json:"max_body_bytes,omitempty"`
	// RateLimit is the requests per second one client key may make on
	// average (a token bucket, counted across the cluster when the node's
	// limiter is shared: cluster.WithRateLimiter); a request over it is
	// answered 429 with Retry-After and the RateLimit-Policy and RateLimit
	// fields. Zero means no limit. A Route may set a limit of its own in
	// its place.
	RateLimit float64 `env:"RATE_LIMIT" json:"rate_limit,omitempty"`
	// RateBurst is how many requests a client key may make at once; zero
	// means RateLimit rounded up.
	RateBurst int `env:"RATE_BURST" json:"rate_burst,omitempty"`
	// RateKey says what a client is: zero means its address (after
	// TrustedProxies: the last address of X-Forwarded-For that is not a
	// trusted proxy's, when the connection comes from one);
	// "header:Name" the value of a request header, "cookie:Name" that of
	// a cookie, a request without it counted by its address.
	RateKey string `env:"RATE_KEY" json:"rate_key,omitempty"`
	// RateKeys caps the client keys tracked (idle ones are evicted first
	// beyond it; about 200 bytes each); zero means 100000.
	RateKeys int `env:"RATE_KEYS" json:"rate_keys,omitempty"`
	// ConnLimit caps the connections one client address may hold open at
	// once; one over it is reset as it is accepted. Zero means no cap.
	ConnLimit int `env:"CONN_LIMIT" json:"conn_limit,omitempty"`

	// Limits bounds what a client can hold on the listener (HAProxy's
	// maxconn and timeouts): MaxConns caps the client connections open at
	// once, closing idle then stalled ones to make room, never stalling
	// accept. THREETIER_PROXY_BODY_TIMEOUT, _SEND_TIMEOUT, _MAX_CONNS.
	tier.Limits
}

// Route sends the requests it matches to one pool. Empty match fields match
// everything.
type Route struct {
	// Host matches the request's host, without its port, case-insensitively:
	// "shop.example.com", or "*.example.com" for any subdomain.
	Host string `json:"host,omitempty"`
	// PathPrefix matches the start of the path. A prefix ending in "/" also
	// matches the path without that slash ("/api/" matches "/api").
	PathPrefix string `json:"path_prefix,omitempty"`
	// Pool names the pool (its Config.Name) that takes the requests.
	Pool string `json:"pool"`
	// StripPrefix removes PathPrefix (keeping a leading "/") before
	// forwarding: "/api/orders" reaches the pool as "/orders".
	StripPrefix bool `json:"strip_prefix,omitempty"`
	// HostHeader is the Host sent upstream: HostPass (zero: the client's),
	// HostEndpoint (the endpoint's host:port), or a fixed value.
	HostHeader string `json:"host_header,omitempty"`
	// RateLimit is the requests per second one client key may make on this
	// route, in place of ProxyConfig.RateLimit: zero means the door's. It
	// is counted apart from the door's (a client has a bucket for the
	// route and one for the rest of the door), keyed by RateKey, and shared
	// across the cluster in the same way. Its RateLimit-Policy is named
	// after Pool, so routes to one pool that set a limit share its bucket
	// and must set the same RateLimit and RateBurst.
	RateLimit float64 `json:"rate_limit,omitempty"`
	// RateBurst is how many requests a client key may make at once on this
	// route; zero means RateLimit rounded up. It needs a RateLimit.
	RateBurst int `json:"rate_burst,omitempty"`
}

// DefaultProxyConfig returns a ProxyConfig with every default filled in.
func DefaultProxyConfig() ProxyConfig { return ProxyConfig{}.withDefaults() }

func (c ProxyConfig) withDefaults() ProxyConfig {
	setDefault(&c.Name, "proxy")
	setDefault(&c.Listen, ":8080")
	setDefault(&c.Engine, EngineFast)
	setDefault(&c.ReadHeaderTimeout, 10*time.Second)
	setDefault(&c.IdleTimeout, 60*time.Second)
	setDefault(&c.ResponseTimeout, 60*time.Second)
	setDefault(&c.MaxConns, tier.DefaultMaxConns)
	setDefault(&c.BodyTimeout, tier.DefaultBodyTimeout)
	setDefault(&c.SendTimeout, tier.DefaultSendTimeout)
	setDefault(&c.MaxHeaderBytes, 64<<10)
	setDefault(&c.MaxBodyBytes, 100<<20)
	return c
}

// Validate reports every invalid setting as a *tier.ConfigError (joined),
// naming the ProxyConfig field.
func (c ProxyConfig) Validate() error {
	var errs []error
	bad := func(field string, value any, problem, allowed string) {
		errs = append(errs, &tier.ConfigError{Field: field, Value: fmt.Sprint(value), Problem: problem, Allowed: allowed})
	}
	switch c.Engine {
	case "", EngineFast, EngineStd:
	default:
		bad("Engine", c.Engine, "unknown engine", EngineFast+" or "+EngineStd)
	}
	for _, p := range []struct{ name, v string }{{"HealthPath", c.HealthPath}, {"ReadyPath", c.ReadyPath}} {
		if err := configcheck.RoutePath(p.name, p.v); err != nil {
			errs = append(errs, err)
		}
	}
	for i, r := range c.Routes {
		if r.Pool == "" {
			bad(fmt.Sprintf("Routes[%d].Pool", i), r.Pool, "names no pool", "the Name of a pool given to NewProxy")
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			bad(fmt.Sprintf("Routes[%d].PathPrefix", i), r.PathPrefix, "must start with /", "")
		}
		if h := r.Host; strings.ContainsAny(h, "/ :") || strings.Contains(h, "*") && !strings.HasPrefix(h, "*.") {
			bad(fmt.Sprintf("Routes[%d].Host", i), h, "not a host name", "shop.example.com or *.example.com, without a port")
		}
		if r.StripPrefix && r.PathPrefix == "" {
			bad(fmt.Sprintf("Routes[%d].StripPrefix", i), true, "needs a PathPrefix", "")
		}
		switch {
		case r.RateLimit < 0 || math.IsNaN(r.RateLimit) || math.IsInf(r.RateLimit, 0):
			bad(fmt.Sprintf("Routes[%d].RateLimit", i), r.RateLimit, "must be a finite number, 0 or more", "0 for the door's limit")
		case r.RateLimit > 0 && (len(r.Pool) > ratelimit.MaxPolicyLen || strings.ContainsRune(r.Pool, 0)):
			bad(fmt.Sprintf("Routes[%d].RateLimit", i), r.RateLimit, "names its policy after Pool, which is too long or holds NUL",
				fmt.Sprintf("a pool name of at most %d bytes", ratelimit.MaxPolicyLen))
		}
		switch {
		case r.RateBurst < 0:
			bad(fmt.Sprintf("Routes[%d].RateBurst", i), r.RateBurst, "must not be negative", "0 for RateLimit rounded up")
		case r.RateBurst > 0 && r.RateLimit == 0:
			bad(fmt.Sprintf("Routes[%d].RateBurst", i), r.RateBurst, "needs a RateLimit", "")
		}
		if j := slices.IndexFunc(c.Routes[:i], func(o Route) bool { return o.Pool == r.Pool && o.RateLimit > 0 }); j >= 0 && r.RateLimit > 0 &&
			(c.Routes[j].RateLimit != r.RateLimit || c.Routes[j].RateBurst != r.RateBurst) {
			bad(fmt.Sprintf("Routes[%d].RateLimit", i), r.RateLimit, fmt.Sprintf("differs from Routes[%d]'s, to the same pool", j),
				"one RateLimit and RateBurst per pool")
		}
	}
	for i, raw := range c.TrustedProxies {
		if _, err := parsePrefix(raw); err != nil {
			bad(fmt.Sprintf("TrustedProxies[%d]", i), raw, "not a network", "a CIDR (10.0.0.0/8) or an address")
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("TLSCert", c.TLSCert, "TLSCert and TLSKey go together", "both or neither")
	}
	if c.RedirectListen != "" && c.TLSCert == "" {
		bad("RedirectListen", c.RedirectListen, "redirects to HTTPS, which needs TLSCert and TLSKey", "")
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"ReadHeaderTimeout", c.ReadHeaderTimeout}, {"IdleTimeout", c.IdleTimeout}} {
		if d.d < 0 {
			bad(d.name, d.d, "must not be negative", "0 for the default")
		}
	}
	if c.MaxConns < 0 {
		bad("MaxConns", c.MaxConns, "must not be negative", "0 for the default")
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		bad("RateLimit", c.RateLimit, "must be a finite number, 0 or more", "0 for no limit")
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"RateBurst", c.RateBurst}, {"RateKeys", c.RateKeys}, {"ConnLimit", c.ConnLimit}} {
		if n.v < 0 {
			bad(n.name, n.v, "must not be negative", "0 for the default")
		}
	}
	if _, err := parseRateKey(c.RateKey); err != nil {
		bad("RateKey", c.RateKey, err.Error(), `"" (the client address), "header:Name" or "cookie:Name"`)
	}
	if c.MaxHeaderBytes < 0 {
		bad("MaxHeaderBytes", c.MaxHeaderBytes, "must not be negative", "0 for the default")
	}
	return errors.Join(errs...)
}

// parsePrefix reads "10.0.0.0/8" or a single address ("10.1.2.3", "::1").
func parsePrefix(raw string) (netip.Prefix, error) {
	raw = strings.TrimSpace(raw)
	if strings.Contains(raw, "/") {
		p, err := netip.ParsePrefix(raw)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(raw)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}
