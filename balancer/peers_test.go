package balancer

import (
	"testing"
	"time"
)

// TestPeerEjectionIsCapped: a peer (buggy, or holding the key) cannot
// eject an endpoint for longer than the pool's own MaxEjection.
func TestPeerEjectionIsCapped(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url, b.url}, Outlier: OutlierConfig{MaxEjection: time.Minute}})
	years := time.Now().Add(10 * 365 * 24 * time.Hour).UnixNano()
	if !p.ApplyPeers(a.url, years, false) {
		t.Fatal("the peer's ejection was not applied")
	}
	st := statusOf(p, a.url)
	if st.State != StateEjected || time.Until(st.EjectedUntil) > time.Minute {
		t.Fatalf("ejected until %s (state %s), want at most a minute from now", st.EjectedUntil, st.State)
	}
}
