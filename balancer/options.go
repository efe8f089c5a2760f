package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/tier"
	"go.opentelemetry.io/otel/trace"
)

// An Option sets what a Config cannot hold: code, not data. Each says
// which of New and NewProxy it is for; given to the other, it is an error
// that names it rather than a setting silently dropped.
type Option func(*options)

// optionSet marks the options given, to refuse those a constructor does not
// read.
type optionSet uint8

const (
	optLogger optionSet = 1 << iota
	optRegistry
	optDiscovery
	optTransport
	optTracer
	optAccessLog
)

var optionNames = [...]string{"WithLogger", "WithRegistry", "WithDiscovery", "WithTransport", "WithTracerProvider", "WithAccessLog"}

// The options New and NewProxy read.
const (
	poolOptions  = optLogger | optRegistry | optDiscovery | optTransport | optTracer
	proxyOptions = optLogger | optRegistry | optTracer | optAccessLog
)

type options struct {
	logger    *slog.Logger
	registry  prometheus.Registerer
	discovery Discoverer
	transport http.RoundTripper
	tracer    trace.TracerProvider
	access    *tier.AccessLogConfig
	given     optionSet
}

// buildOptions applies opts in order, the last of two that set the same
// thing winning, and refuses any option outside reads, naming it and
// constructor.
func buildOptions(constructor string, reads optionSet, opts []Option) (options, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	for i, name := range optionNames {
		if o.given&^reads&(1<<i) != 0 {
			errs = append(errs, fmt.Errorf("balancer: %s does not apply to %s", name, constructor))
		}
	}
	return o, errors.Join(errs...)
}

// WithLogger sends the pool's events (ejections, health changes, discovery
// results) to l; by default they are discarded.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l; o.given |= optLogger }
}

// WithRegistry registers the pool's threetier_balancer_* metrics (a
// Proxy's threetier_proxy_* ones) with reg; by default they go nowhere.
func WithRegistry(reg prometheus.Registerer) Option {
	return func(o *options) { o.registry = reg; o.given |= optRegistry }
}

// WithDiscovery adds the endpoints d finds to the configured ones; the pool
// asks d again every Config.DiscoveryInterval between Start and Stop, and
// soon after an endpoint fails to connect. For New only.
func WithDiscovery(d Discoverer) Option {
	return func(o *options) { o.discovery = d; o.given |= optDiscovery }
}

// WithTransport sends the pool's requests (and health checks) through rt.
// By default the pool has its own transport: a lean HTTP/1.1 one for http
// endpoints, an *http.Transport (cloned from http.DefaultTransport, room for
// 256 idle connections per endpoint) for the rest. For New only.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt; o.given |= optTransport }
}

// WithTracerProvider traces with tp: a Pool makes a client span per
// attempt (endpoint, retry number) and sends its traceparent in place of
// the caller's; a Proxy makes a server span per request on its listener.
// Without it, or with a no-op provider, nothing is traced and traceparent
// passes through as it came.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = tp; o.given |= optTracer }
}

// WithAccessLog makes a Proxy write an access line per request, in cfg's
// format and fields (by default through its logger, with the remote, method,
// host, URI, protocol, pool, status, bytes and duration); without it the
// Proxy writes none. For NewProxy only.
func WithAccessLog(cfg tier.AccessLogConfig) Option {
	return func(o *options) { o.access = &cfg; o.given |= optAccessLog }
}
