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

// TierError is the former name of Error.
//
// Deprecated: use Error.
type TierError = Error

func (e *Error) Error() string {
	return fmt.Sprintf("tier %q: %s: %v", e.Tier, e.Phase, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ConfigError says which setting is wrong, what was wrong with it and, when
// known, what is allowed.
type ConfigError struct {
	Var     string // the environment variable or Config field
	Value   string // the rejected value, if any
	Problem string
	Allowed string // optional: what would be accepted
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.Var)
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
