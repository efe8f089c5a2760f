package balancer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// drainable is an upstream built as the tiers build theirs: a
// tier.HTTPServer that drains before it stops.
type drainable struct {
	srv  *tier.HTTPServer
	hits atomic.Int64
}

func startDrainable(t *testing.T, addr string) *drainable {
	t.Helper()
	d := &drainable{}
	health := &tier.Health{}
	mux := http.NewServeMux()
	mux.Handle("GET /readyz", health.ReadinessHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	})
	d.srv = tier.NewHTTPServer("app", &http.Server{Addr: addr, Handler: mux}, tier.WithDrain(health, time.Hour))
	if err := d.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no drain delay: the test is over
		_ = d.srv.Stop(ctx)
	})
	return d
}

// TestDrainingEndpointLeavesWithoutAFailure sends POSTs, which are never
// retried once sent, over two upstreams while one drains, stops and comes
// back: the pool must stop sending to it on its first draining answer, so
// that not one request meets the closing listener. The POSTs go through
// the pool as a Go client's, and through a front door on each engine.
func TestDrainingEndpointLeavesWithoutAFailure(t *testing.T) {
	for _, via := range append([]string{"pool"}, engines...) {
		for _, checks := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/health_checks=%v", via, checks), func(t *testing.T) { testDrainingEndpoint(t, via, checks) })
		}
	}
}

func testDrainingEndpoint(t *testing.T, via string, checks bool) {
	{
		{
			a, b := startDrainable(t, "127.0.0.1:0"), startDrainable(t, "127.0.0.1:0")
			cfg := Config{
				Endpoints: []string{"http://" + a.srv.Addr(), "http://" + b.srv.Addr()},
				Outlier:   OutlierConfig{BaseEjection: 300 * time.Millisecond},
			}
			if checks {
				cfg.Health = HealthConfig{Path: "/readyz", Interval: 50 * time.Millisecond, Rise: 1}
			}
			p := newPool(t, cfg)
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			client, target := p.Client(), "http://pool/order"
			if via != "pool" {
				_, url := startProxyOn(t, via, ProxyConfig{}, []*Pool{p})
				client, target = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}, url+"/order"
				defer client.CloseIdleConnections()
			}

			var sent, failed atomic.Int64
			var firstErr atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						sent.Add(1)
						resp, err := client.Post(target, "text/plain", strings.NewReader("one order"))
						if err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode != 200 {
								err = fmt.Errorf("status %d", resp.StatusCode)
							}
						}
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
						}
					}
				})
			}
			more := func(n int64) {
				target := sent.Load() + n
				wait.For(t, 10*time.Second, fmt.Sprintf("%d more requests", n), func() bool { return sent.Load() >= target })
			}
			more(200)

			ctx, cancel := context.WithCancel(context.Background())
			drained := make(chan error, 1)
			go func() { drained <- a.srv.Drain(ctx) }()
			wait.For(t, 5*time.Second, "the pool to stop sending to the draining endpoint", func() bool {
				return !statusOf(p, "http://"+a.srv.Addr()).Serving
			})
			hits := a.hits.Load()
			more(200)
			if late := a.hits.Load() - hits; late > 4 {
				t.Errorf("%d requests reached the draining endpoint after the pool took it out", late)
			}
			cancel()
			<-drained
			addr := a.srv.Addr()
			if err := a.srv.Stop(context.Background()); err != nil { // drained already: no delay
				t.Fatal(err)
			}
			more(200)

			back := startDrainable(t, addr)
			wait.For(t, 5*time.Second, "the restarted endpoint to take requests", func() bool { return back.hits.Load() > 0 })
			close(stop)
			wg.Wait()
			if n := failed.Load(); n != 0 {
				t.Fatalf("%d of %d requests failed; first: %v", n, sent.Load(), firstErr.Load())
			}
			t.Logf("%d requests, none failed", sent.Load())
		}
	}
}
