package tier

import (
	"errors"
	"fmt"
	"strings"
)

// ErrStopTimeout is wrapped by the error Run returns when a tier did not
// finish stopping within the stop timeout.
var ErrStopTimeout = errors.New("stop timed out")

// Error names the tier and the phase (start, run or stop) that failed; Run
// returns it.
type Error struct {
	Tier  string
	Phase string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("tier %q: %s: %v", e.Tier, e.Phase, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ConfigError says which setting is wrong, what was wrong with it and, when
// known, what is allowed. A Config's Validate names the Go field; LoadEnv,
// which knows the prefix the Config was loaded under, adds the variable.
type ConfigError struct {
	// Field is the path of the Config field, as Go writes it
	// ("Retry.Attempts", "Endpoints[0]", "MaxConns" of an embedded Limits).
	Field string
	// Var is the environment variable behind Field, when the Config was
	// loaded from the environment, or one that names no field.
	Var     string
	Value   string // the rejected value, if any
	Problem string
	Allowed string // optional: what would be accepted
}

// Error names Var, or Field when there is no variable.
func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.Var != "" {
		b.WriteString(e.Var)
	} else {
		b.WriteString(e.Field)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, "=%q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	if e.Allowed != "" {
		b.WriteString(" (allowed: ")
		b.WriteString(e.Allowed)
		b.WriteString(")")
	}
	return b.String()
}

// InField returns err with parent and a dot put before the Field of every
// *ConfigError in it, for a Config whose Validate checks a nested one:
// web's Config reports its FilesConfig's "Prefix" as "Files.Prefix".
func InField(parent string, err error) error {
	switch e := err.(type) {
	case *ConfigError:
		if e.Field != "" {
			e.Field = parent + "." + e.Field
		}
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			InField(parent, inner)
		}
	case interface{ Unwrap() error }:
		InField(parent, e.Unwrap())
	}
	return err
}

// CheckRoutePath is the rule for a Config field that names a route a
// tier serves on its listener (a metrics or probe path): empty or "-"
// means not served, anything else must be a plain path starting with "/"
// (no ":", "*", "?" or "#", which a router would read as a pattern or
// never see). It returns a *ConfigError naming field, or nil.
func CheckRoutePath(field, path string) error {
	if path == "" || path == "-" || (strings.HasPrefix(path, "/") && !strings.ContainsAny(path, ":*?#")) {
		return nil
	}
	return &ConfigError{Field: field, Value: path, Problem: "must be a plain path starting with /", Allowed: `for example /metrics, or "-" for off`}
}
