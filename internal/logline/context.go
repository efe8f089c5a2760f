package logline

import (
	"context"
	"log/slog"

	"github.com/threetier/threetier/internal/httpx"
	"go.opentelemetry.io/otel/trace"
)

// traceHandler gives records logged with a context carrying a valid span
// trace_id and span_id attributes, to find a request's log lines from its
// trace and back.
type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// RequestIDAttr is the attribute that carries a record's request ID.
const RequestIDAttr = "request_id"

// requestIDHandler gives records logged with a context carrying a request
// ID a request_id attribute, unless they have one.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := httpx.RequestID(ctx); id != "" && !hasAttr(r, RequestIDAttr) {
		r.AddAttrs(slog.String(RequestIDAttr, id))
	}
	return h.Handler.Handle(ctx, r)
}

// hasAttr reports whether r has a top-level attribute called key.
func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
