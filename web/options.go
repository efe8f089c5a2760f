package web

import (
	"io/fs"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threetier/threetier/tier"
)

// An Option sets what Config cannot hold: file systems, loggers,
// registries and forwarded routes.
type Option func(*options)

type options struct {
	fsys fs.FS
	log  *slog.Logger
	reg  prometheus.Registerer
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
// they go nowhere. The Server serves a *prometheus.Registry at
// Config.MetricsPath.
func WithRegistry(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

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
