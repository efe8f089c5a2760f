package h1

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: the
// transport holds none of its own.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
