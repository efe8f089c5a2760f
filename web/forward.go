package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/tier"
)

// Forwarding defaults applied when a ForwardConfig field is zero.
const (
	DefaultForwardMaxBody = 10 << 20
	DefaultForwardTimeout = 30 * time.Second
)

// ForwardConfig configures one route prefix handed to the app tier.
type ForwardConfig struct {
	// Prefix is the path prefix forwarded ("/api/"); it must start and end
	// with "/". The path without its final slash ("/api") is forwarded too.
	Prefix string `json:"prefix"`
	// StripPrefix removes Prefix (keeping a leading "/") before forwarding,
	// so "/api/orders" reaches the app tier as "/orders".
	StripPrefix bool `json:"strip_prefix"`
	// MaxBodyBytes bounds request bodies (413 beyond); zero means 10 MiB,
	// negative means no bound.
	MaxBodyBytes int64 `json:"max_body_bytes"`
	// Timeout bounds the whole exchange with the app tier (504 when it
	// ends before the response headers); zero means 30s, negative none.
	Timeout time.Duration `json:"timeout"`
	// TrustForwarded keeps the X-Forwarded-For the client sent and appends
	// to it: only behind a front door that sets it. By default the web
	// tier is the edge and replaces whatever the client claims.
	TrustForwarded bool `json:"trust_forwarded"`
}

func (c ForwardConfig) validate() error {
	if !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/") {
		return &tier.ConfigError{Var: "ForwardConfig.Prefix", Value: c.Prefix, Problem: "must start and end with /", Allowed: "for example /api/"}
	}
	return nil
}

func (c ForwardConfig) withDefaults() ForwardConfig {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultForwardMaxBody
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultForwardTimeout
	}
	return c
}

// Forwarder hands requests to the app tier through a balancer pool: it
// sets X-Forwarded-For, -Host and -Proto, passes the request ID and the
// W3C traceparent on, bounds the body and the time, and answers failures
// as problem+json (502 unreachable, 503 no endpoint, 504 too slow, 413
// body too large). It is an http.Handler, usable without the Server.
type Forwarder struct {
	cfg   ForwardConfig
	proxy *httputil.ReverseProxy
}

var _ http.Handler = (*Forwarder)(nil)

// NewForwarder returns a Forwarder to pool for cfg.Prefix. The pool's
// lifecycle stays with the caller: run it as a tier before the web tier
// so that its health checks run.
func NewForwarder(pool *balancer.Pool, cfg ForwardConfig, opts ...Option) (*Forwarder, error) {
	if pool == nil {
		return nil, errors.New("web: forward: nil pool")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := tier.LoggerOrDiscard(buildOptions(opts).log)
	fw := &Forwarder{cfg: cfg}
	fw.proxy = &httputil.ReverseProxy{
		Rewrite:      fw.rewrite,
		Transport:    pool,
		ErrorHandler: fw.fail,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return fw, nil
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
	if max := fw.cfg.MaxBodyBytes; max > 0 && r.Body != nil {
		if r.ContentLength > max {
			problem(w, r, http.StatusRequestEntityTooLarge, "request body over "+strconv.FormatInt(max, 10)+" bytes")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	if fw.cfg.Timeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), fw.cfg.Timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	fw.proxy.ServeHTTP(w, r)
}

// rewrite aims the outgoing request at the pool (which picks the host)
// and sets the forwarding headers. ReverseProxy has already dropped
// hop-by-hop headers and the client's X-Forwarded-*.
func (fw *Forwarder) rewrite(pr *httputil.ProxyRequest) {
	// The pool puts the endpoint's scheme and host in; the Host header
	// follows the endpoint (as nginx's proxy_pass does), the client's goes
	// in X-Forwarded-Host.
	pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "app", ""
	if fw.cfg.StripPrefix {
		pr.Out.URL.Path = stripPrefix(pr.In.URL.Path, fw.cfg.Prefix)
		if pr.In.URL.RawPath != "" {
			pr.Out.URL.RawPath = stripPrefix(pr.In.URL.RawPath, fw.cfg.Prefix)
		}
	}
	if fw.cfg.TrustForwarded {
		pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	}
	pr.SetXForwarded()
	if id := tier.RequestID(pr.In.Context()); id != "" {
		pr.Out.Header.Set(tier.HeaderRequestID, id)
	}
	// traceparent and tracestate are end-to-end headers: ReverseProxy
	// copies them; nothing here may drop them.
}

// stripPrefix turns "/api/orders" into "/orders" and "/api" into "/" for
// prefix "/api/".
func stripPrefix(p, prefix string) string {
	if rest, ok := strings.CutPrefix(p, prefix); ok {
		return "/" + rest
	}
	if p+"/" == prefix {
		return "/"
	}
	return p
}

// fail answers a request the app tier did not: 413 for a body cut off by
// the limit, otherwise what balancer.ProxyErrorHandler says (503 when no
// endpoint can take it, 504 on timeout, 502 else).
func (fw *Forwarder) fail(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		problem(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit))
		return
	}
	balancer.ProxyErrorHandler(w, r, err)
}

// WithForward has the Server hand requests under cfg.Prefix to pool (see
// NewForwarder). Forwarded routes take precedence over files.
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
