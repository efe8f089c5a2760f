// Package tracing holds what the tiers share to make OpenTelemetry spans:
// whether a provider records at all, the propagators, and the server-span
// wrapper. Nothing here is global: every tier gets its provider as an
// option.
package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope names the instrumentation in every span threetier makes.
const Scope = "github.com/threetier/threetier"

// On reports whether tp can record spans. A nil or no-op provider cannot:
// the tiers then skip tracing altogether, so that it costs nothing.
func On(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	_, noOp := tp.(noop.TracerProvider)
	return !noOp
}

// Tracer returns tp's tracer for threetier, or nil when tp is off.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if !On(tp) {
		return nil
	}
	return tp.Tracer(Scope)
}

// Propagator reads and writes W3C traceparent, tracestate and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Inject writes ctx's span context and baggage into h.
func Inject(ctx context.Context, p propagation.TextMapPropagator, h http.Header) {
	p.Inject(ctx, propagation.HeaderCarrier(h))
}

// Server wraps h so that every request gets a server span named after its
// method (the tiers that route rename it by route, see Route), a child of
// the traceparent it came with. HTTP metrics stay with Prometheus: the
// wrapper's own go nowhere.
func Server(tp trace.TracerProvider, server string, h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, server,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(Propagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithServerName(server),
	)
}
