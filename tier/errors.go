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
