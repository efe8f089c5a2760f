package tier

import "log/slog"

// loggerHandler is the handler of NewLogger's loggers. It carries, beside
// the slog chain, the access line encoder that writes as that chain does,
// so that an AccessLog on such a logger can write its lines itself.
type loggerHandler struct {
	slog.Handler
	access *accessLine
}

func (h loggerHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return loggerHandler{h.Handler.WithAttrs(attrs), h.access.withAttrs(attrs)}
}

// WithGroup leaves the access line encoder behind: access attributes
// inside a group are slog's to write.
func (h loggerHandler) WithGroup(name string) slog.Handler {
	return h.Handler.WithGroup(name)
}
