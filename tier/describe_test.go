package tier

import (
	"errors"
	"fmt"
	"testing"
)

// conflictError describes itself the way a tier's own error types do.
type conflictError struct{}

func (conflictError) Error() string           { return "conflict" }
func (conflictError) Problem() *Problem       { return NewProblem(409, "already there") }
func (conflictError) DependencyFailure() bool { return false }

func TestErrorsThatDescribeThemselvesAreFoundThroughWrapping(t *testing.T) {
	err := fmt.Errorf("create: %w", errors.Join(errors.New("other"), conflictError{}))
	if p := ProblemOf(err); p == nil || p.Status != 409 || p.Detail != "already there" {
		t.Errorf("ProblemOf = %+v, want the 409 of the wrapped error", p)
	}
	if failure, known := DependencyFailureOf(err); failure || !known {
		t.Errorf("DependencyFailureOf = %v, %v; want an answer, not a failure", failure, known)
	}
	if p := ProblemOf(errors.New("plain")); p != nil {
		t.Errorf("a plain error describes %+v", p)
	}
	if _, known := DependencyFailureOf(errors.New("plain")); known {
		t.Error("a plain error judges itself")
	}
}

func TestProblemDescribesItself(t *testing.T) {
	orig := NewProblem(503, "down")
	p := ProblemOf(fmt.Errorf("call: %w", orig))
	p.Instance = "/changed"
	if orig.Instance != "" || p.Status != 503 {
		t.Errorf("ProblemOf(%+v) = %+v: want a copy", orig, p)
	}
	for status, want := range map[int]bool{404: false, 422: false, 500: true, 503: true} {
		if failure, known := DependencyFailureOf(NewProblem(status, "")); failure != want || !known {
			t.Errorf("a %d problem: failure %v, want %v", status, failure, want)
		}
	}
}
