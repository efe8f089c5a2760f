package retry

import (
	"testing"
	"time"
)

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	for n := range 40 {
		d := Backoff(time.Millisecond, 50*time.Millisecond, n)
		if d < 0 || d >= 50*time.Millisecond || (n == 0 && d >= time.Millisecond) {
			t.Fatalf("Backoff(%d) = %s", n, d)
		}
		seen[d] = true
	}
	if len(seen) < 30 {
		t.Fatalf("Backoff hardly varies: %d distinct values of 40", len(seen))
	}
}
