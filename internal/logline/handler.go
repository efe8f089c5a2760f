package logline

import (
	"io"
	"log/slog"
)

// Handler is the handler of tier.NewLogger's loggers. It carries, beside
// the slog chain, the access line encoder that writes as that chain does,
// so that an access log on such a logger can write its lines itself.
type Handler struct {
	slog.Handler
	// Access writes access lines as Handler would.
	Access *Line
}

// NewHandler returns the handler of a logger writing JSON or text lines
// to w at level: records logged with a context carrying a request ID get
// a request_id attribute, and those with a span trace_id and span_id.
func NewHandler(w io.Writer, json bool, level slog.Leveler) Handler {
	opts := &slog.HandlerOptions{Level: level}
	lw := NewLockedWriter(w)
	var h slog.Handler
	if json {
		h = slog.NewJSONHandler(lw, opts)
	} else {
		h = slog.NewTextHandler(lw, opts)
	}
	return Handler{traceHandler{requestIDHandler{h}}, NewLine(json, true, lw)}
}

func (h Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return Handler{h.Handler.WithAttrs(attrs), h.Access.WithAttrs(attrs)}
}

// WithGroup leaves the access line encoder behind: access attributes
// inside a group are slog's to write.
func (h Handler) WithGroup(name string) slog.Handler {
	return h.Handler.WithGroup(name)
}
