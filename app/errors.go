package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/threetier/threetier/tier"
)

// Rejections: a guard refused to call its dependency. Each reaches the
// caller wrapped in a *GuardError and leaves the tier as 503 Service
// Unavailable with a Retry-After header.
var (
	// ErrBreakerOpen: the breaker is open (or half-open with every probe
	// slot taken) because the dependency has been failing.
	ErrBreakerOpen = errors.New("circuit breaker open")
	// ErrBulkheadFull: the dependency already has its maximum of concurrent
	// calls and no slot freed up within the allowed wait.
	ErrBulkheadFull = errors.New("too many concurrent calls")
	// ErrKeyBusy: a key the call names (Call.Keys: a hot row) had its
	// maximum of calls in flight for as long as the call could wait.
	ErrKeyBusy = errors.New("too many concurrent calls for the same key")
	// ErrRetryBudget: a retry was needed but the guard's retry budget is
	// spent, so the last failure is returned instead of adding load to a
	// struggling dependency.
	ErrRetryBudget = errors.New("retry budget exhausted")
)

// ErrTimeout: the dependency did not answer within the guard's call
// timeout. It reaches the caller wrapped in a *GuardError and leaves the
// tier as 504 Gateway Timeout. errors.Is(err, context.DeadlineExceeded)
// also holds.
var ErrTimeout = timeoutError{}

type timeoutError struct{}

func (timeoutError) Error() string        { return "dependency call timed out" }
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }
func (timeoutError) Timeout() bool        { return true }

// GuardError is what a guarded call returns when the guard rejected the
// call or the dependency timed out: it names the guard, says why, and how
// long the caller should wait before trying again.
type GuardError struct {
	// Guard is the name of the dependency.
	Guard string
	// Err is ErrBreakerOpen, ErrBulkheadFull, ErrKeyBusy, ErrRetryBudget
	// or ErrTimeout;
	// for ErrRetryBudget, Cause holds the failure that went unretried.
	Err error
	// Cause is the dependency's own error, when there was one.
	Cause error
	// RetryAfter is how long until the guard is likely to accept calls
	// again: the breaker's remaining open time, or zero when unknown.
	RetryAfter time.Duration
}

func (e *GuardError) Error() string {
	msg := fmt.Sprintf("dependency %q: %v", e.Guard, e.Err)
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap gives errors.Is and errors.As both the reason and the cause.
func (e *GuardError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// Unavailable reports whether err means a guard refused a call (open
// breaker, full bulkhead, busy key, spent retry budget): the situation a
// fallback is for.
func Unavailable(err error) bool {
	return errors.Is(err, ErrBreakerOpen) || errors.Is(err, ErrBulkheadFull) || errors.Is(err, ErrKeyBusy) || errors.Is(err, ErrRetryBudget)
}

// ValidationError lists the invalid fields of a request; it leaves the
// tier as 422 Unprocessable Content with one entry per field.
type ValidationError struct {
	Fields []tier.FieldProblem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid request")
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(" ")
		b.WriteString(f.Detail)
	}
	return b.String()
}
