package balancer

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/internal/tracing"
)

// attemptTracer makes a client span for each attempt of a request, so a
// retried request shows every endpoint it tried. A pool without a tracer
// provider has none, and forwards traceparent as it came.
type attemptTracer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	pool   attribute.KeyValue
}

// newAttemptTracer returns nil when tp does not record.
func newAttemptTracer(tp trace.TracerProvider, pool string) *attemptTracer {
	t := tracing.Tracer(tp)
	if t == nil {
		return nil
	}
	return &attemptTracer{tracer: t, prop: tracing.Propagator(), pool: attribute.String("threetier.balancer.pool", pool)}
}

// start begins attempt n (0 for the first) of out on e, and returns out
// carrying the span: in its context, and as the traceparent it sends in
// place of the caller's, so that the endpoint's span is the attempt's
// child.
func (t *attemptTracer) start(out *http.Request, e *endpoint, n int) (*http.Request, trace.Span) {
	attrs := []attribute.KeyValue{
		t.pool,
		attribute.String("threetier.balancer.endpoint", e.key),
		attribute.String("http.request.method", out.Method),
		attribute.String("server.address", e.url.Hostname()),
	}
	if port, err := strconv.Atoi(e.url.Port()); err == nil {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	if n > 0 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", n))
	}
	ctx, span := t.tracer.Start(out.Context(), out.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	out = out.WithContext(ctx)
	out.Header = out.Header.Clone() // the caller's, or the next attempt's, stay as they were
	if out.Header == nil {
		out.Header = make(http.Header, 2)
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	return out, span
}

// end closes an attempt's span once its response headers are in (or it
// failed).
func endAttempt(span trace.Span, resp *http.Response, err error) {
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 500 {
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
}
