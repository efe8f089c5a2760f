package tier_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/configcheck"
	"github.com/threetier/threetier/tier"
)

type serverConfig struct {
	Addr    string        `env:"ADDR" envDefault:"127.0.0.1:8080"`
	Timeout time.Duration `env:"TIMEOUT" envDefault:"5s"`
	Workers int           `env:"WORKERS" envDefault:"4"`
	Log     tier.LogConfig
	TLS     struct {
		Port int `env:"PORT"`
	} `envPrefix:"TLS_"`
}

func (c serverConfig) Validate() error {
	if c.Workers <= 0 {
		return &tier.ConfigError{Field: "Workers", Problem: "must be positive", Allowed: "1 or more"}
	}
	return configcheck.InField("Log", c.Log.Validate())
}

func TestLoadEnvDefaultsAndOverrides(t *testing.T) {
	var cfg serverConfig
	err := tier.LoadEnvFrom([]string{"THREETIER_WEB_TIMEOUT=250ms", "THREETIER_WEB_LOG_FORMAT=json"}, "THREETIER_WEB_", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.Timeout != 250*time.Millisecond || cfg.Workers != 4 || cfg.Log.Format != "json" {
		t.Fatalf("cfg = %+v", cfg)
	}

	// Values already set by the caller (DefaultConfig) win over envDefault,
	// and set variables win over both.
	cfg = serverConfig{Workers: 9, Timeout: time.Second}
	if err := tier.LoadEnvFrom([]string{"THREETIER_WEB_TIMEOUT=2s"}, "THREETIER_WEB_", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Workers != 9 || cfg.Timeout != 2*time.Second || cfg.Addr != "127.0.0.1:8080" {
		t.Fatalf("preset and variables merged wrongly: %+v", cfg)
	}
}

func TestLoadEnvNamesTheBadVariable(t *testing.T) {
	tests := []struct {
		env  string
		want []string
	}{
		{"THREETIER_WEB_TIMEOUT=soon", []string{"THREETIER_WEB_TIMEOUT", `"soon"`, "time.Duration"}},
		{"THREETIER_WEB_TLS_PORT=https", []string{"THREETIER_WEB_TLS_PORT", `"https"`, "int"}},
		{"THREETIER_WEB_WORKERS=0", []string{"THREETIER_WEB_WORKERS", "must be positive", "allowed: 1 or more"}},
		{"THREETIER_WEB_LOG_LEVEL=loud", []string{"THREETIER_WEB_LOG_LEVEL", `"loud"`, "debug, info, warn, error"}},
		{"THREETIER_WEB_LOG_FORMAT=xml", []string{"THREETIER_WEB_LOG_FORMAT", `"xml"`, "text, json"}},
	}
	for _, tt := range tests {
		var cfg serverConfig
		err := tier.LoadEnvFrom([]string{tt.env}, "THREETIER_WEB_", &cfg)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want a *ConfigError", tt.env, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tt.env, err, w)
			}
		}
	}
}
