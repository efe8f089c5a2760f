package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
	"github.com/valyala/fasthttp"
)

// ForwardEnvPrefix prefixes a forwarded route's environment variables
// (THREETIER_WEB_FORWARD_PREFIX, THREETIER_WEB_FORWARD_RESPONSE_TIMEOUT, ...).
const ForwardEnvPrefix = EnvPrefix + "FORWARD_"

// Forwarding defaults applied when a ForwardConfig field is zero.
const (
	DefaultForwardMaxBodyBytes    = 10 << 20
	DefaultForwardResponseTimeout = 30 * time.Second
)

// ForwardConfig configures one route prefix handed to the app tier.
type ForwardConfig struct {
	// Prefix is the path prefix forwarded ("/api/"); it must start and end
	// with "/". The path without its final slash ("/api") is forwarded too.
	Prefix string `env:"PREFIX" json:"prefix"`
	// StripPrefix removes Prefix (keeping a leading "/") before forwarding,
	// so "/api/orders" reaches the app tier as "/orders".
	StripPrefix bool `env:"STRIP_PREFIX" json:"strip_prefix"`
	// MaxBodyBytes bounds request bodies (413 beyond); zero means 10 MiB,
	// negative means no bound.
	MaxBodyBytes int64 `env:"MAX_BODY_BYTES" json:"max_body_bytes"`
	// ResponseTimeout is the request's deadline, end to end, as
	// balancer.ProxyConfig.ResponseTimeout is: it bounds the wait for the
	// app tier's response headers (504 after it), retries included, and
	// what is left of it goes to the app tier with each attempt
	// (tier.HeaderTimeout), whose request context ends then. The caller's
	// own tier.HeaderTimeout (the front door's, or a client's) may shorten
	// it, never lengthen it. The response may then stream as long as it
	// lasts (SSE, WebSocket). Zero means 30s, negative none but the
	// caller's.
	ResponseTimeout time.Duration `env:"RESPONSE_TIMEOUT" json:"response_timeout"`
	// TrustForwarded keeps the X-Forwarded-For, -Proto, -Host and
	// Forwarded headers the client sent, appending to the lists: only
	// behind a front door that sets them. By default the web tier is the
	// edge and replaces whatever the client claims.
	TrustForwarded bool `env:"TRUST_FORWARDED" json:"trust_forwarded"`
}

// Validate reports settings that cannot work, naming the ForwardConfig
// field (tier.LoadEnv names the variable).
func (c ForwardConfig) Validate() error {
	if !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/") {
		return &tier.ConfigError{Field: "Prefix", Value: c.Prefix, Problem: "must start and end with /", Allowed: "for example /api/"}
	}
	return nil
}

// DefaultForwardConfig returns a ForwardConfig with every default spelled
// out and no Prefix.
func DefaultForwardConfig() ForwardConfig { return ForwardConfig{}.withDefaults() }

func (c ForwardConfig) withDefaults() ForwardConfig {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultForwardMaxBodyBytes
	}
	if c.ResponseTimeout == 0 {
		c.ResponseTimeout = DefaultForwardResponseTimeout
	}
	return c
}

// Forwarder hands requests to the app tier through a balancer pool. It is a
// use of balancer.Proxy, the front door's proxy path, so it gets all of it:
// 1xx responses passed on, request and response bodies streamed both ways,
// Upgrade (WebSocket) tunnels, X-Forwarded-For, -Host, -Proto and
// Forwarded, the request ID, the W3C traceparent and the deadline (what is
// left of Timeout, in tier.HeaderTimeout) passed on, failures as
// problem+json (502 unreachable, 503 no endpoint, 504 too slow, 413 body
// too large). It is an http.Handler, usable without the Server.
type Forwarder struct {
	cfg   ForwardConfig
	proxy *balancer.Proxy
}

var _ http.Handler = (*Forwarder)(nil)

// NewForwarder returns a Forwarder to pool for cfg.Prefix. The pool's
// lifecycle stays with the caller: run it as a tier before the web tier
// so that its health checks run.
func NewForwarder(pool *balancer.Pool, cfg ForwardConfig, opts ...Option) (*Forwarder, error) {
	if pool == nil {
		return nil, errors.New("web: forward: nil pool")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	pc := balancer.ProxyConfig{
		Name: "web" + cfg.Prefix,
		// The Host header follows the endpoint (as nginx's proxy_pass
		// does); the client's goes in X-Forwarded-Host.
		Routes:          []balancer.Route{{PathPrefix: cfg.Prefix, Pool: pool.Name(), StripPrefix: cfg.StripPrefix, HostHeader: balancer.HostEndpoint}},
		MaxBodyBytes:    cfg.MaxBodyBytes,
		ResponseTimeout: cfg.ResponseTimeout,
	}
	if cfg.TrustForwarded {
		pc.TrustedProxies = []string{"0.0.0.0/0", "::/0"}
	}
	px, err := balancer.NewProxy(pc, []*balancer.Pool{pool}, balancer.WithLogger(obs.Logger(o.log)), balancer.WithRegistry(o.reg))
	if err != nil {
		return nil, fmt.Errorf("web: forward %s: %w", cfg.Prefix, err)
	}
	return &Forwarder{cfg: cfg, proxy: px}, nil
}

// ServeHTTP forwards r. Headers already set on w (by middleware such as
// the Server's security headers and request ID) are defaults: a header the
// app tier sends replaces them rather than going out beside them.
func (fw *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := w.Header(); len(h) > 0 {
		d := &defaultHeaders{ResponseWriter: w, defaults: h.Clone()}
		clear(h)
		w = d
	}
	fw.proxy.ServeHTTP(w, r)
}

// ServeFast forwards ctx's request on the fast engine
// (tier.WithFastHTTP1): the front door's fast proxy path.
func (fw *Forwarder) ServeFast(ctx *fasthttp.RequestCtx) { fw.proxy.ServeFast(ctx) }

// echoHandler serves the Forwarder in Echo. Echo's Response takes the
// first status written as the final one, so informational (1xx) responses
// go to the connection beneath it and the final one through it, for the
// access log and metrics to see.
func (fw *Forwarder) echoHandler(c echo.Context) error {
	fw.ServeHTTP(&echoFinal{resp: c.Response()}, c.Request())
	return nil
}

// echoFinal is an http.ResponseWriter over an echo.Response that passes
// 1xx statuses beneath it.
type echoFinal struct{ resp *echo.Response }

func (e *echoFinal) Header() http.Header         { return e.resp.Header() }
func (e *echoFinal) Write(b []byte) (int, error) { return e.resp.Write(b) }
func (e *echoFinal) WriteHeader(code int) {
	if code < 200 && code != http.StatusSwitchingProtocols {
		e.resp.Writer.WriteHeader(code)
		return
	}
	e.resp.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach Flush, Hijack and full duplex
// beneath.
func (e *echoFinal) Unwrap() http.ResponseWriter { return e.resp.Writer }

// WithForward has the Server hand requests under cfg.Prefix to pool (see
// NewForwarder). Forwarded routes take precedence over files. The pool is
// one of the Server's readiness checks, under its name: a web tier with no
// app server to forward to is not ready.
func WithForward(pool *balancer.Pool, cfg ForwardConfig) Option {
	return func(o *options) { o.forwards = append(o.forwards, forward{pool, cfg}) }
}

type forward struct {
	pool *balancer.Pool
	cfg  ForwardConfig
}

// defaultHeaders adds its defaults to the final response for the keys the
// response does not set itself. Informational (1xx) responses get none.
type defaultHeaders struct {
	http.ResponseWriter
	defaults http.Header
	applied  bool
}

func (d *defaultHeaders) WriteHeader(code int) {
	if !d.applied && (code >= 200 || code == http.StatusSwitchingProtocols) {
		d.applied = true
		h := d.ResponseWriter.Header()
		for k, v := range d.defaults {
			if _, set := h[k]; !set {
				h[k] = v
			}
		}
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *defaultHeaders) Write(b []byte) (int, error) {
	if !d.applied {
		d.WriteHeader(http.StatusOK)
	}
	return d.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack beneath.
func (d *defaultHeaders) Unwrap() http.ResponseWriter { return d.ResponseWriter }
