package app

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// An Option sets something New takes from the caller rather than from
// configuration: a logger, a metrics registry, hooks.
type Option interface{ applyServer(*options) }

// A GuardsOption sets something NewGuards takes from the caller. Only the
// options that both constructors read are both (SharedOption), so that
// NewGuards cannot be given one it would ignore.
type GuardsOption interface{ applyGuards(*options) }

// A SharedOption is an Option and a GuardsOption: WithLogger,
// WithRegistry, WithHealth and WithTracerProvider.
type SharedOption func(*options)

func (f SharedOption) applyServer(o *options) { f(o) }
func (f SharedOption) applyGuards(o *options) { f(o) }

// serverOption is an Option that only New reads.
type serverOption func(*options)

func (f serverOption) applyServer(o *options) { f(o) }

type options struct {
	log       *slog.Logger
	reg       prometheus.Registerer
	health    *tier.Health
	guards    *Guards
	validator *BodyValidator
	problems  func(error) *tier.Problem
	access    tier.AccessLogConfig
	tracer    trace.TracerProvider
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt.applyServer(&o)
	}
	o.log = obs.Logger(o.log)
	return o
}

func buildGuardsOptions(opts []GuardsOption) options {
	var o options
	for _, opt := range opts {
		opt.applyGuards(&o)
	}
	o.log = obs.Logger(o.log)
	return o
}

// WithLogger sets the logger for access logs, errors and breaker
// transitions; without it nothing is logged.
func WithLogger(l *slog.Logger) SharedOption { return func(o *options) { o.log = l } }

// WithRegistry registers the tier's metrics (threetier_app_...) with reg;
// without it they go nowhere. Serve reg on an admin listener
// (tier.NewAdmin); the server serves it on its own listener only at
// Config.MetricsPath, when one is set and reg is a *prometheus.Registry.
func WithRegistry(reg prometheus.Registerer) SharedOption { return func(o *options) { o.reg = reg } }

// WithHealth sets the Health that serves /healthz and /readyz and on which
// guards register as checkers; without it the server makes its own. Share
// one Health between tiers to have a single readiness answer.
func WithHealth(h *tier.Health) SharedOption { return func(o *options) { o.health = h } }

// WithGuards gives the server the registry of guards it reports on
// /readyz; without it the server makes an empty one (see Server.Guards).
func WithGuards(g *Guards) Option { return serverOption(func(o *options) { o.guards = g }) }

// WithBodyValidator sets the validator of bound requests; without it the
// server uses NewBodyValidator().
func WithBodyValidator(v *BodyValidator) Option {
	return serverOption(func(o *options) { o.validator = v })
}

// WithProblems lets the caller map errors it cannot make describe
// themselves (a library's, say) to problems; errors that are a
// tier.ProblemError, the data tier's included, need nothing. f is asked
// first; when it returns nil, ProblemFor decides.
func WithProblems(f func(error) *tier.Problem) Option {
	return serverOption(func(o *options) { o.problems = f })
}

// WithAccessLog chooses the access log's format and fields; without it
// the server logs tier.DefaultAccessFields through its logger. Turning it
// off leaves error logs alone.
func WithAccessLog(cfg tier.AccessLogConfig) Option {
	return serverOption(func(o *options) { o.access = cfg })
}

// WithTracerProvider traces with tp: a server span per request, named by
// route, and (through NewGuards) an internal span per guarded call. Without
// it, or with a no-op provider, nothing is traced.
func WithTracerProvider(tp trace.TracerProvider) SharedOption {
	return func(o *options) { o.tracer = tp }
}
