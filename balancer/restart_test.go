package balancer

import (
	"net"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

// restart serves b's address again after a kill, as a restarted instance.
func restart(t *testing.T, b *backend) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", b.ln.Addr().String())
	if err != nil {
		t.Fatalf("relisten: %v", err)
	}
	return serveBackend(t, ln)
}

// One instance is killed and restarted at once, and the other dies while
// the first is still within its ejection: the restarted one, ready again,
// takes every request, and no client sees a failure.
func TestRestartedInstanceServesWhileTheOtherDies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		health HealthConfig
	}{
		// Its health checks pass: it comes back before its ejection ends.
		{"health checks", HealthConfig{Path: "/healthz", Interval: 200 * time.Millisecond}},
		// No checks: requests the other fails try it as a last resort, and
		// the first it answers brings it back.
		{"no checks", HealthConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newBackend(t), newBackend(t)
			p := newPool(t, Config{
				Endpoints: []string{a.url, b.url},
				Health:    tc.health,
				// Longer than the test: only an early return brings a back.
				Outlier: OutlierConfig{BaseEjection: time.Minute},
			})
			if err := p.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			sent, failed, loadDone := load(t, p.Client(), "http://upstream/x", 4, stop)
			defer func() {
				select {
				case <-stop:
				default:
					close(stop)
					loadDone()
				}
			}()
			wait.For(t, 5*time.Second, "traffic on both", func() bool { return a.hits.Load() > 20 && b.hits.Load() > 20 })

			a.kill()
			wait.For(t, 2*time.Second, "the killed instance to be ejected", func() bool {
				return statusOf(p, a.url).State == StateEjected
			})
			time.Sleep(500 * time.Millisecond) // the restart delay of the scenario
			a = restart(t, a)
			if tc.health.Path != "" {
				wait.For(t, 3*time.Second, "the restarted instance back", func() bool {
					return statusOf(p, a.url).State == StateUp
				})
			} else if st := statusOf(p, a.url); st.State != StateEjected {
				t.Fatalf("without checks the restarted instance is %s before the other dies", st.State)
			}

			b.kill()
			before := a.hits.Load()
			wait.For(t, 5*time.Second, "traffic on the restarted instance alone", func() bool { return a.hits.Load() > before+200 })
			close(stop)
			loadDone()
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d requests failed while a ready instance existed", n, sent.Load())
			}
			if st := statusOf(p, a.url); st.State != StateUp {
				t.Fatalf("restarted instance is %s, want up", st.State)
			}
			t.Logf("%d requests, 0 failed", sent.Load())
		})
	}
}
