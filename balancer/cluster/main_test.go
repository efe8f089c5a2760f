package cluster

import (
	"testing"

	"github.com/threetier/threetier/internal/leaks"
	"go.uber.org/goleak"
)

// TestMain fails the run when a goroutine outlives the tests: a node
// must stop its gossip, its senders and its join retries.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leaks.FastHTTP()...)
}
