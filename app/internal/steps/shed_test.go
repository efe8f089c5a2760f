package steps

import (
	"testing"
	"time"
)

func TestAdaptiveCapRecovers(t *testing.T) {
	s := NewShedder(16, 2, 10*time.Millisecond, time.Second, nil)
	for range 3 {
		s.inFlight.Add(1)
		s.done(1, 50*time.Millisecond)
		s.lastDecrease = time.Time{} // let each slow signal count
	}
	low := s.Limit()
	if low >= 16 || low < 2 {
		t.Fatalf("cap %d after slow requests, want lowered, not below 2", low)
	}
	for range 100 {
		s.inFlight.Add(1)
		s.done(s.Limit(), time.Millisecond) // fast and busy
	}
	if s.Limit() != 16 {
		t.Fatalf("cap %d after fast busy requests, want back at 16", s.Limit())
	}
	if s.inFlight.Load() != 0 {
		t.Fatalf("in flight %d, want 0", s.inFlight.Load())
	}
}
