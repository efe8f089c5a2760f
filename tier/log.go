package tier

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// LogConfig chooses the log format and level; load it with
// LoadEnv(EnvPrefix, &cfg) to read THREETIER_LOG_LEVEL and THREETIER_LOG_FORMAT.
type LogConfig struct {
	// Level is debug, info, warn or error; zero means info.
	Level string `env:"LOG_LEVEL" json:"level"`
	// Format is text or json; zero means text.
	Format string `env:"LOG_FORMAT" json:"format"`
}

// DefaultLogConfig returns a LogConfig with every default spelled out.
func DefaultLogConfig() LogConfig { return LogConfig{}.withDefaults() }

func (c LogConfig) withDefaults() LogConfig {
	if c.Level == "" {
		c.Level = "info"
	}
	if c.Format == "" {
		c.Format = "text"
	}
	return c
}

// Validate reports an unknown level or format.
func (c LogConfig) Validate() error {
	if _, err := parseLevel(c.Level); err != nil {
		return err
	}
	switch strings.ToLower(c.Format) {
	case "", "text", "json":
		return nil
	}
	return &ConfigError{Field: "Format", Value: c.Format, Problem: "unknown log format", Allowed: "text, json"}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, &ConfigError{Field: "Level", Value: s, Problem: "unknown log level", Allowed: "debug, info, warn, error"}
	}
	return l, nil
}

// NewLogger returns a slog logger writing to w in the configured format and
// level. Every record logged with a context that carries a request ID (a
// tier's request context does, see RequestID) gets a request_id attribute, and one with a span its
// trace_id and span_id (see TraceHandler). An AccessLog on the logger, or
// on one made from it by With, writes its lines itself, as the logger would.
func NewLogger(cfg LogConfig, w io.Writer) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	level, _ := parseLevel(cfg.Level)
	opts := &slog.HandlerOptions{Level: level}
	lw := &lockedWriter{w: w}
	json := strings.EqualFold(cfg.Format, "json")
	var h slog.Handler
	if json {
		h = slog.NewJSONHandler(lw, opts)
	} else {
		h = slog.NewTextHandler(lw, opts)
	}
	access := newAccessLine(json, true, lw)
	return slog.New(loggerHandler{TraceHandler(RequestIDHandler(h)), access}), nil
}

// requestIDAttr is the attribute that carries a record's request ID.
const requestIDAttr = "request_id"

// RequestIDHandler wraps h so that records logged with a context carrying a
// request ID get a request_id attribute, unless they have one.
func RequestIDHandler(h slog.Handler) slog.Handler { return requestIDHandler{h} }

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" && !hasAttr(r, requestIDAttr) {
		r.AddAttrs(slog.String(requestIDAttr, id))
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
