package balancer

import (
	"net"
	"net/http"
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
// takes every request, and no client sees a failure, through the pool as
// a Go client's and through a front door on each engine.
func TestRestartedInstanceServesWhileTheOtherDies(t *testing.T) {
	for _, via := range append([]string{"pool"}, engines...) {
		for _, tc := range []struct {
			name   string
			health HealthConfig
		}{
			// Its health checks pass: it comes back before its ejection ends.
			{"health_checks", HealthConfig{Path: "/healthz", Interval: 200 * time.Millisecond}},
			// No checks: requests the other fails try it as a last resort,
			// and the first it answers brings it back.
			{"no_checks", HealthConfig{}},
		} {
			t.Run(via+"/"+tc.name, func(t *testing.T) { testRestartWhileTheOtherDies(t, via, tc.health) })
		}
	}
}

func testRestartWhileTheOtherDies(t *testing.T, via string, health HealthConfig) {
	a, b := newBackend(t), newBackend(t)
	p := newPool(t, Config{
		Endpoints: []string{a.url, b.url},
		Health:    health,
		// Longer than the test: only an early return brings a back.
		Outlier: OutlierConfig{BaseEjection: time.Minute},
	})
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	client, target := p.Client(), "http://upstream/x"
	if via != "pool" {
		_, url := startProxyOn(t, via, ProxyConfig{}, []*Pool{p})
		client, target = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}, url+"/x"
		defer client.CloseIdleConnections()
	}
	stop := make(chan struct{})
	sent, failed, loadDone := load(t, client, target, 4, stop)
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
	if health.Path != "" {
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
}

// Only an attempt sent after the ejection began may end it: an answer to
// one sent before says nothing of what came since.
func TestOnlyAnAttemptSentAfterTheEjectionEndsIt(t *testing.T) {
	p := staticPool(t, 3, Config{Outlier: OutlierConfig{BaseEjection: time.Minute}})
	e := p.eps[0]
	now := time.Now().UnixNano()
	p.eject(e, now, nil)
	p.servedWhileEjected(e, now-1, now+1)
	if !e.ejected(now + 2) {
		t.Fatal("an answer to an attempt sent before the ejection ended it")
	}
	p.servedWhileEjected(e, now+1, now+2)
	if e.ejected(now + 3) {
		t.Fatal("an answer to an attempt sent during the ejection did not end it")
	}
	if p.table.Load().healthy != 3 {
		t.Fatalf("table after the early return: %d healthy, want 3", p.table.Load().healthy)
	}
}
