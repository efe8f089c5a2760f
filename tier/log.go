package tier

import (
	"io"
	"log/slog"
	"strings"

	"github.com/threetier/threetier/internal/logline"
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
// level. Every record logged with the context of a request a tier serves
// gets its request_id (see RequestID), and one logged with a span its
// trace_id and span_id. The access lines of a tier given the logger, or
// one made from it by With, read as its other lines do.
func NewLogger(cfg LogConfig, w io.Writer) (*slog.Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	level, _ := parseLevel(cfg.Level)
	return slog.New(logline.NewHandler(w, strings.EqualFold(cfg.Format, "json"), level)), nil
}
