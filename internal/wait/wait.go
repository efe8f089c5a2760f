// Package wait lets tests wait on a condition with a deadline instead of
// sleeping and hoping.
package wait

import (
	"testing"
	"time"
)

// For polls cond until it holds, and fails t if it does not within the
// given time. The poll starts at 1 ms and backs off to 20 ms, so that a
// quick condition is seen at once and a costly one (a query) is not run
// in a tight loop.
func For(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(pause)
		pause = min(2*pause, 20*time.Millisecond)
	}
}
