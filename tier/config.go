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
// Validate when cfg has it. A set variable replaces the value cfg holds;
// fields whose variables are unset keep theirs, so callers start from
// DefaultConfig() or from values of their own (flags, say). Every
// *ConfigError that Validate returns naming a Field gets the variable
// behind that field, under prefix, as its Var.
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
			return explainEnvError(vars, prefix, cfg, err)
		}
	}
	if v, ok := cfg.(Validator); ok {
		err := v.Validate()
		nameVars(err, reflect.TypeOf(cfg), prefix)
		return err
	}
	return nil
}

// nameVars gives every *ConfigError in err (joined or wrapped) that names
// a Field but no Var the variable behind that field under prefix.
func nameVars(err error, t reflect.Type, prefix string) {
	switch e := err.(type) {
	case *ConfigError:
		if e.Var == "" && e.Field != "" {
			e.Var, _ = fieldVar(t, e.Field, prefix)
		}
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			nameVars(inner, t, prefix)
		}
	case interface{ Unwrap() error }:
		nameVars(e.Unwrap(), t, prefix)
	}
}

// fieldVar is the variable behind the field at path ("Retry.Attempts",
// "Endpoints[2]", or "MaxConns" promoted from an embedded tier.Limits)
// under prefix, following envPrefix tags on the way.
func fieldVar(t reflect.Type, path, prefix string) (string, bool) {
	t = indirect(t)
	if t.Kind() != reflect.Struct {
		return "", false
	}
	name, rest, nested := strings.Cut(path, ".")
	name, _, _ = strings.Cut(name, "[")
	f, ok := t.FieldByName(name)
	if !ok {
		return "", false
	}
	// A promoted field sits in embedded structs, whose prefixes apply.
	outer := t
	for _, i := range f.Index[:len(f.Index)-1] {
		ef := outer.Field(i)
		prefix += ef.Tag.Get("envPrefix")
		outer = indirect(ef.Type)
	}
	if nested {
		return fieldVar(f.Type, rest, prefix+f.Tag.Get("envPrefix"))
	}
	if tag := envTag(f); tag != "" {
		return prefix + tag, true
	}
	return "", false
}

// An envField is a Config field and the variable it is loaded from.
type envField struct {
	Path, Var string
}

// envFields lists every variable a struct of type t reads under prefix,
// as the parser walks it: into nested structs (adding their envPrefix) and
// embedded ones.
func envFields(t reflect.Type, path, prefix string) []envField {
	t = indirect(t)
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []envField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		p := f.Name
		if f.Anonymous {
			p = path // promoted: Go names it without the embedded type
		} else if path != "" {
			p = path + "." + f.Name
		}
		if tag := envTag(f); tag != "" {
			out = append(out, envField{Path: p, Var: prefix + tag})
			continue
		}
		out = append(out, envFields(f.Type, p, prefix+f.Tag.Get("envPrefix"))...)
	}
	return out
}

func envTag(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return tag
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// explainEnvError turns the parser's errors into ConfigErrors that name the
// variable and say what was wrong.
func explainEnvError(vars map[string]string, prefix string, cfg any, err error) error {
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
			f := parsedField(vars, prefix, cfg, parse.Name)
			out = append(out, &ConfigError{
				Field:   f.Path,
				Var:     f.Var,
				Value:   vars[f.Var],
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

// parsedField finds the field the parser failed on: it reports only the
// field's own name, which nested structs may share ("Timeout"), so prefer
// the one whose variable is set.
func parsedField(vars map[string]string, prefix string, cfg any, name string) envField {
	guess := envField{Path: name, Var: prefix + strings.ToUpper(name)}
	for _, f := range envFields(reflect.TypeOf(cfg), "", prefix) {
		if f.Path != name && !strings.HasSuffix(f.Path, "."+name) {
			continue
		}
		if _, set := vars[f.Var]; set {
			return f
		}
		guess = f
	}
	return guess
}

func unwrapMsg(err error) string {
	if err == nil {
		return "invalid value"
	}
	return err.Error()
}
