package balancer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
)

// load sends GETs of url from several goroutines until stop is closed and
// counts the ones that failed (an error or a status other than 200).
func load(t *testing.T, client *http.Client, url string, workers int, stop <-chan struct{}) (sent, failed *atomic.Int64, done func()) {
	sent, failed = new(atomic.Int64), new(atomic.Int64)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, err := get(t, client, url)
				sent.Add(1)
				if err != nil || code != 200 {
					failed.Add(1)
					t.Logf("failed: %d %v", code, err)
				}
			}
		})
	}
	return sent, failed, wg.Wait
}

func TestKilledBackendUnderLoad(t *testing.T) {
	for _, policy := range []Policy{PolicyRoundRobin, PolicyLeastRequest, PolicyP2CEWMA} {
		t.Run(string(policy), func(t *testing.T) {
			a, b, c := newBackend(t), newBackend(t), newBackend(t)
			p := newPool(t, Config{
				Endpoints: []string{a.url, b.url, c.url},
				Policy:    policy,
				Outlier:   OutlierConfig{BaseEjection: time.Minute},
			})
			stop := make(chan struct{})
			sent, failed, loadDone := load(t, p.Client(), "http://upstream/x", 16, stop)
			wait.For(t, 10*time.Second, "traffic on every backend", func() bool {
				return a.hits.Load() > 50 && b.hits.Load() > 50 && c.hits.Load() > 50
			})

			b.kill()
			killed := time.Now()
			wait.For(t, time.Second, "the killed backend to be ejected", func() bool {
				return statusOf(p, b.url).State == StateEjected
			})
			t.Logf("ejected %s after the kill", time.Since(killed))

			// Something listens on the dead backend's address again: once the
			// attempts picked before the ejection are over, it gets no request.
			wait.For(t, time.Second, "attempts on the dead backend to end", func() bool {
				return statusOf(p, b.url).InFlight == 0
			})
			ln, err := net.Listen("tcp", b.ln.Addr().String())
			if err != nil {
				t.Fatalf("relisten: %v", err)
			}
			zombie := serveBackend(t, ln)
			before := sent.Load()
			wait.For(t, 10*time.Second, "more traffic", func() bool { return sent.Load() > before+300 })
			close(stop)
			loadDone()

			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d requests failed", n, sent.Load())
			}
			if n := zombie.hits.Load(); n != 0 {
				t.Fatalf("the ejected endpoint got %d new requests", n)
			}
			if err := p.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d requests, 0 failed", sent.Load())
		})
	}
}

func TestFailingBackendEjectedThenSlowStart(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	p := newPool(t, Config{
		Endpoints: []string{a.url, b.url},
		SlowStart: 2 * time.Second,
		Outlier:   OutlierConfig{ConsecutiveFailures: 3, BaseEjection: 200 * time.Millisecond},
	})
	client := p.Client()
	b.status.Store(500)
	for i := 0; statusOf(p, b.url).State != StateEjected; i++ {
		if i > 50 {
			t.Fatalf("not ejected after %d requests: %+v", i, statusOf(p, b.url))
		}
		_, _, _ = get(t, client, "http://upstream/")
	}
	if st := statusOf(p, b.url); st.Ejections != 1 || st.Failures != 3 {
		t.Fatalf("status = %+v", st)
	}
	// While b is out, everything goes to a.
	b.hits.Store(0)
	for range 20 {
		if code, body, err := get(t, client, "http://upstream/"); err != nil || code != 200 || body != a.url {
			t.Fatalf("while ejected: %d %q %v", code, body, err)
		}
	}

	b.status.Store(0) // recovered
	wait.For(t, 5*time.Second, "b back in slow start", func() bool { return statusOf(p, b.url).State == StateSlowStart })
	a.hits.Store(0)
	b.hits.Store(0)
	for range 100 {
		if code, _, err := get(t, client, "http://upstream/"); err != nil || code != 200 {
			t.Fatalf("during slow start: %d %v", code, err)
		}
	}
	if ah, bh := a.hits.Load(), b.hits.Load(); bh == 0 || bh*2 > ah {
		t.Fatalf("slow start: a got %d, b got %d; want b under half of a but not nothing", ah, bh)
	}
	wait.For(t, 5*time.Second, "b fully up", func() bool { return statusOf(p, b.url).State == StateUp })
	a.hits.Store(0)
	b.hits.Store(0)
	for range 100 {
		_, _, _ = get(t, client, "http://upstream/")
	}
	if ah, bh := a.hits.Load(), b.hits.Load(); ah != 50 || bh != 50 {
		t.Fatalf("after slow start: a %d, b %d", ah, bh)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	bs := []*backend{newBackend(t), newBackend(t), newBackend(t), newBackend(t), newBackend(t)}
	var urls []string
	for _, b := range bs {
		b.status.Store(500)
		urls = append(urls, b.url)
	}
	p := newPool(t, Config{
		Endpoints: urls,
		Outlier:   OutlierConfig{ConsecutiveFailures: 2, BaseEjection: time.Minute, MaxEjectionPercent: 50},
		Retry:     RetryConfig{Attempts: 1},
	})
	for range 100 {
		_, _, _ = get(t, p.Client(), "http://upstream/")
	}
	ejected := 0
	for _, s := range p.Snapshot() {
		if s.State == StateEjected {
			ejected++
		}
	}
	if ejected != 2 { // 50% of 5, rounded down
		t.Fatalf("%d of 5 ejected, want 2", ejected)
	}

	lone := newBackend(t)
	lone.status.Store(500)
	p1 := newPool(t, Config{Endpoints: []string{lone.url}, Outlier: OutlierConfig{ConsecutiveFailures: 1}})
	for range 5 {
		_, _, _ = get(t, p1.Client(), "http://upstream/")
	}
	if st := statusOf(p1, lone.url); st.State != StateUp || st.Ejections != 0 {
		t.Fatalf("a lone endpoint was ejected: %+v", st)
	}
}

func TestEjectionsBackOffExponentially(t *testing.T) {
	p := staticPool(t, 3, Config{Outlier: OutlierConfig{BaseEjection: time.Second, MaxEjection: 5 * time.Second}})
	e := p.eps[0]
	now := time.Now().UnixNano()
	var lengths []time.Duration
	for range 5 {
		p.eject(e, now, nil)
		to := e.ejectedTo.Load()
		lengths = append(lengths, time.Duration(to-now))
		// The ejection ends and the endpoint fails again at once.
		now = to
		p.mu.Lock()
		p.unEject(e, to, to)
		p.mu.Unlock()
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if lengths[i] != want[i] {
			t.Fatalf("ejection lengths %v, want %v", lengths, want)
		}
	}
	// Serving well for as long as the last ejection lasted forgives it.
	p.succeeded(e, now+int64(4*time.Second))
	if e.streak.Load() == 0 {
		t.Fatal("forgiven too early")
	}
	p.succeeded(e, now+int64(5*time.Second))
	if e.streak.Load() != 0 {
		t.Fatal("not forgiven")
	}
	if e.ejections.Load() != 5 {
		t.Fatalf("%d ejections counted", e.ejections.Load())
	}
}

func TestRunTimeChangesUnderLoad(t *testing.T) {
	a, b, c := newBackend(t), newBackend(t), newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url, b.url}, Policy: PolicyLeastRequest, SlowStart: 100 * time.Millisecond})
	stop := make(chan struct{})
	sent, failed, loadDone := load(t, p.Client(), "http://upstream/x", 8, stop)
	wait.For(t, 10*time.Second, "traffic", func() bool { return sent.Load() > 50 })
	ctx := context.Background()
	for i := range 30 {
		if err := p.Add(Endpoint{URL: c.url, Weight: 1 + i%3}); err != nil {
			t.Fatal(err)
		}
		if err := p.SetWeight(a.url, 1+i%5); err != nil {
			t.Fatal(err)
		}
		if err := p.Drain(ctx, b.url); err != nil {
			t.Fatal(err)
		}
		if err := p.Undrain(b.url); err != nil {
			t.Fatal(err)
		}
		if err := p.Remove(ctx, c.url); err != nil {
			t.Fatal(err)
		}
	}
	before := sent.Load()
	wait.For(t, 10*time.Second, "more traffic", func() bool { return sent.Load() > before+50 })
	close(stop)
	loadDone()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), sent.Load())
	}
	if err := p.SetWeight(a.url, 0); err == nil {
		t.Fatal("weight 0 accepted")
	}
}

func TestAllEjectedPanicsAndTellsWhenBack(t *testing.T) {
	a := newBackend(t)
	a.status.Store(500)
	p := newPool(t, Config{
		Endpoints: []string{a.url},
		Outlier:   OutlierConfig{ConsecutiveFailures: 1, BaseEjection: 30 * time.Second, MaxEjectionPercent: 100},
	})
	_, _, _ = get(t, p.Client(), "http://upstream/")
	err := p.Check(context.Background())
	var ne *NoEndpointError
	if !errors.As(err, &ne) || ne.RetryAfter < 25*time.Second || ne.RetryAfter > 30*time.Second {
		t.Fatalf("check = %v", err)
	}
	// Nothing healthy is left: the ejected endpoint still gets requests
	// rather than none at all.
	a.status.Store(0)
	if code, _, err := get(t, p.Client(), "http://upstream/"); err != nil || code != 200 {
		t.Fatalf("got %d %v", code, err)
	}
}
