package tier_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/threetier/threetier/tier"
)

// poolConfig nests a struct under a prefix and embeds Limits, as the
// tiers' Configs do.
type poolConfig struct {
	Retry struct {
		Attempts int `env:"ATTEMPTS"`
	} `envPrefix:"RETRY_"`
	tier.Limits
}

func (c poolConfig) Validate() error {
	return errors.Join(
		&tier.ConfigError{Field: "Retry.Attempts", Problem: "bad"},
		&tier.ConfigError{Field: "MaxConns", Problem: "bad"},
		&tier.ConfigError{Field: "Limits.DrainDelay", Problem: "bad"},
	)
}

func TestLoadEnvNamesFieldsUnderTheGivenPrefix(t *testing.T) {
	err := tier.LoadEnvFrom(nil, "THREETIER_BALANCER_WEB_", &poolConfig{})
	for _, want := range []string{
		"THREETIER_BALANCER_WEB_RETRY_ATTEMPTS: bad",
		"THREETIER_BALANCER_WEB_MAX_CONNS: bad",
		"THREETIER_BALANCER_WEB_DRAIN_DELAY: bad",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Validated alone, the errors name the fields.
	if err := (poolConfig{}).Validate(); !strings.Contains(err.Error(), "Retry.Attempts: bad") {
		t.Errorf("Validate: %v", err)
	}
}

func TestEnvCheckNamesUnknownVariablesAndTheNearestKnown(t *testing.T) {
	e := tier.NewEnv([]string{
		"THREETIER_POOL_RETRY_ATTEMPS=2",
		"THREETIER_POOL_MAX_CONNS=10",
		"THREETIER_SHOP_ROLE=web",
		"THREETIER_LOG_LEVL=debug",
		"HOME=/root",
	})
	var cfg poolConfig
	if err := e.Load("THREETIER_POOL_", &cfg); err == nil || cfg.MaxConns != 10 {
		t.Fatalf("Load: %v, MaxConns %d", err, cfg.MaxConns)
	}
	if role, _ := e.Lookup("THREETIER_SHOP_ROLE"); role != "web" {
		t.Fatalf("Lookup = %q", role)
	}
	e.Known("THREETIER_LOG_LEVEL")
	err := e.Check()
	var ce *tier.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Check = %v, want a *ConfigError", err)
	}
	want := "THREETIER_LOG_LEVL: unknown variable; did you mean THREETIER_LOG_LEVEL?\n" +
		"THREETIER_POOL_RETRY_ATTEMPS: unknown variable; did you mean THREETIER_POOL_RETRY_ATTEMPTS?"
	if err.Error() != want {
		t.Fatalf("Check =\n%v\nwant\n%s", err, want)
	}
}

func TestEnvCheckPassesWhenEveryVariableIsKnown(t *testing.T) {
	// A test suite's own variables are no service's business.
	e := tier.NewEnv([]string{"THREETIER_LOG_FORMAT=json", "PATH=/bin", "THREETIER_TEST_POSTGRES=postgres://db/test"})
	var log tier.LogConfig
	if err := e.Load(tier.EnvPrefix, &log); err != nil {
		t.Fatal(err)
	}
	if err := e.Check(); err != nil {
		t.Fatalf("Check = %v", err)
	}
}

func TestEnvCheckSuggestsOnlyCloseNames(t *testing.T) {
	web := []string{"THREETIER_WEB_ROOT", "THREETIER_WEB_LISTEN"}
	for _, tc := range []struct {
		set   string
		known []string
		want  string
	}{
		// Another program's variable: nothing read here is near it.
		{"THREETIER_WEB_ROOT", nil, "THREETIER_WEB_ROOT: unknown variable"},
		{"THREETIER_X", nil, "THREETIER_X: unknown variable"},
		{"THREETIER_WEB_ROOOT", web, "THREETIER_WEB_ROOOT: unknown variable; did you mean THREETIER_WEB_ROOT?"},
		{"THREETIER_WEB_LISTNE", web, "THREETIER_WEB_LISTNE: unknown variable; did you mean THREETIER_WEB_LISTEN?"},
		{"THREETIER_LOG_FORMT", nil, "THREETIER_LOG_FORMT: unknown variable; did you mean THREETIER_LOG_FORMAT?"},
	} {
		e := tier.NewEnv([]string{tc.set + "=x"})
		e.Declare(tier.EnvPrefix, &tier.LogConfig{})
		e.Known(tc.known...)
		if err := e.Check(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: Check = %v, want %s", tc.set, err, tc.want)
		}
	}
}
