package balancer

import (
	"context"
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
	ctx, span := t.begin(out.Context(), out.Method, e, n)
	out = out.WithContext(ctx)
	out.Header = out.Header.Clone() // the caller's, or the next attempt's, stay as they were
	if out.Header == nil {
		out.Header = make(http.Header, 2)
	}
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	return out, span
}

// begin starts the span of attempt n of a request with method on e, a
// child of ctx's span, whichever engine sends it.
func (t *attemptTracer) begin(ctx context.Context, method string, e *endpoint, n int) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{
		t.pool,
		attribute.String("threetier.balancer.endpoint", e.key),
		attribute.String("http.request.method", method),
		attribute.String("server.address", e.url.Hostname()),
	}
	if port, err := strconv.Atoi(e.url.Port()); err == nil {
		attrs = append(attrs, attribute.Int("server.port", port))
	}
	if n > 0 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", n))
	}
	return t.tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endAttempt closes an attempt's span once its response headers are in
// (status) or it failed (err).
func endAttempt(span trace.Span, status int, err error) {
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
	}
	span.End()
}

// wireCarrier appends the headers a propagator sets as header lines to a
// request being written.
type wireCarrier struct{ b *[]byte }

func (c wireCarrier) Get(string) string { return "" }
func (c wireCarrier) Keys() []string    { return nil }
func (c wireCarrier) Set(key, value string) {
	b := append(*c.b, http.CanonicalHeaderKey(key)...)
	b = append(b, ": "...)
	b = append(b, value...)
	*c.b = append(b, "\r\n"...)
}
