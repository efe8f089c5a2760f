package tier

import "errors"

// A ProblemError is an error that knows the answer its client should get.
// A tier's errors implement it so that an edge can answer them without a
// mapping table of its own: the app tier sends the problem of any
// ProblemError a handler returns, wrapped or not.
type ProblemError interface {
	error
	// Problem returns the problem to send. Callers may change it: each call
	// returns a value of its own.
	Problem() *Problem
}

// A DependencyError is an error that knows whether it counts against the
// dependency that returned it. A failure (the database is unreachable,
// timing out) trips a circuit breaker and is worth a retry; an answer (no
// such row, a duplicate key) is the dependency doing its job, and counting
// it would open breakers on bad input.
type DependencyError interface {
	error
	DependencyFailure() bool
}

// ProblemOf returns the problem of the first ProblemError in err's tree
// (see errors.As), or nil when there is none.
func ProblemOf(err error) *Problem {
	var pe ProblemError
	if !errors.As(err, &pe) {
		return nil
	}
	return pe.Problem()
}

// DependencyFailureOf reports the verdict of the first DependencyError in
// err's tree: failure is that error's DependencyFailure, and known is false
// when err holds no DependencyError.
func DependencyFailureOf(err error) (failure, known bool) {
	var de DependencyError
	if !errors.As(err, &de) {
		return false, false
	}
	return de.DependencyFailure(), true
}

var (
	_ ProblemError    = (*Problem)(nil)
	_ DependencyError = (*Problem)(nil)
)

// Problem makes a *Problem a ProblemError: a copy of itself.
func (p *Problem) Problem() *Problem {
	cp := *p
	return &cp
}

// DependencyFailure makes a *Problem a DependencyError: a dependency that
// answered with a problem failed only when the status is 5xx; a 4xx says
// the request was wrong.
func (p *Problem) DependencyFailure() bool { return p.Status >= 500 }
