package tier

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
)

// EnvPrefix is the prefix of every threetier environment variable; each tier
// adds its own ("THREETIER_DATA_", "THREETIER_WEB_", ...).
const EnvPrefix = "THREETIER_"

// A Validator is a Config that checks itself after loading. Validate returns
// a *ConfigError (or several, joined) naming what is wrong.
type Validator interface {
	Validate() error
}

// LoadEnv fills cfg (a pointer to a Config struct with `env` tags) from the
// process environment, with prefix before every variable name, then calls
// Validate when cfg has it. Fields whose variables are unset keep the values
// cfg already holds, so callers start from DefaultConfig().
func LoadEnv(prefix string, cfg any) error {
	return LoadEnvFrom(os.Environ(), prefix, cfg)
}

// LoadEnvFrom is LoadEnv over the given "KEY=value" list instead of the
// process environment (tests use it to stay hermetic).
func LoadEnvFrom(environ []string, prefix string, cfg any) error {
	vars := env.ToMap(environ)
	// Two passes, because the parser's "defaults for zero values only" mode
	// also skips set variables for fields that hold a value. The first pass
	// fills zero fields from their variables or envDefault tags; the second
	// applies every set variable, defaults off, over values cfg already held.
	passes := []env.Options{
		{Environment: vars, Prefix: prefix, SetDefaultsForZeroValuesOnly: true},
		{Environment: vars, Prefix: prefix, DefaultValueTagName: "envDefaultUnused"},
	}
	for _, opts := range passes {
		if err := env.ParseWithOptions(cfg, opts); err != nil {
			return explainEnvError(environ, prefix, cfg, err)
		}
	}
	if v, ok := cfg.(Validator); ok {
		return v.Validate()
	}
	return nil
}

// explainEnvError turns the parser's errors into ConfigErrors that name the
// variable and say what was wrong.
func explainEnvError(environ []string, prefix string, cfg any, err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config from environment (prefix %s): %w", prefix, err)
	}
	var out []error
	for _, e := range agg.Errors {
		var (
			parse   env.ParseError
			missing env.VarIsNotSetError
			empty   env.EmptyVarError
		)
		switch {
		case errors.As(e, &parse):
			key := envKey(reflect.TypeOf(cfg), parse.Name, prefix)
			out = append(out, &ConfigError{
				Var:     key,
				Value:   env.ToMap(environ)[key],
				Problem: "cannot parse as " + parse.Type.String() + ": " + unwrapMsg(parse.Err),
			})
		case errors.As(e, &missing):
			out = append(out, &ConfigError{Var: missing.Key, Problem: "required but not set"})
		case errors.As(e, &empty):
			out = append(out, &ConfigError{Var: empty.Key, Problem: "required but empty"})
		default:
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// envKey finds the variable behind a struct field, following nested structs
// and their envPrefix tags; it falls back to the field name.
func envKey(t reflect.Type, field, prefix string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return prefix + strings.ToUpper(field)
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if f.Name == field && tag != "" {
			return prefix + tag
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if p := f.Tag.Get("envPrefix"); ft.Kind() == reflect.Struct && (p != "" || f.Anonymous) && hasField(ft, field) {
			return envKey(ft, field, prefix+p) // an embedded struct (tier.Limits) adds no prefix
		}
	}
	return prefix + strings.ToUpper(field)
}

func hasField(t reflect.Type, name string) bool {
	_, ok := t.FieldByName(name)
	return ok
}

func unwrapMsg(err error) string {
	if err == nil {
		return "invalid value"
	}
	return err.Error()
}
