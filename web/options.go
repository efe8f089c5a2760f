package web

import (
	"io/fs"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/tier"
	"go.opentelemetry.io/otel/trace"
)

// An Option sets what Config cannot hold: file systems, loggers,
// registries and forwarded routes.
type Option func(*options)

type options struct {
	fsys fs.FS
	log  *slog.Logger
	reg  prometheus.Registerer
	// tracer gives the server a span per request; nil or no-op: none.
	tracer trace.TracerProvider
	// forwards are the routes handed to the app tier, in order.
	forwards []forward
	access   tier.AccessLogConfig
}

// WithFS serves fsys (an embed.FS, fstest.MapFS, ...) instead of
// FilesConfig.Root.
func WithFS(fsys fs.FS) Option { return func(o *options) { o.fsys = fsys } }

// WithLogger logs through l: unexpected file errors and, in the server,
// one access-log line per request. Without it nothing is logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegistry registers the threetier_web_* metrics with reg. Without it
// they go nowhere. The Server serves a *prometheus.Registry on its own
// listener only at Config.MetricsPath, when one is set: serve reg on an
// admin listener (tier.NewAdmin) instead.
func WithRegistry(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithTracerProvider gives every request the Server takes a server span
// from tp, named by route; forwarded requests are traced further by the
// pool, given its own balancer.WithTracerProvider. Without it, or with a
// no-op provider, nothing is traced and traceparent passes through.
func WithTracerProvider(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithAccessLog chooses the access log's format and fields; without it
// the server logs tier.DefaultAccessFields through its logger. Turning it
// off leaves error logs alone.
func WithAccessLog(cfg tier.AccessLogConfig) Option { return func(o *options) { o.access = cfg } }
