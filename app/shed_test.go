package app

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// overloadResult is what one overload run measured.
type overloadResult struct {
	admitted  []time.Duration // latency of the requests served
	shed      int             // 503 answers
	badShed   int             // 503 answers without Retry-After or problem+json
	other     int             // anything else
	peak      int64           // most requests inside the handler at once
	lastLimit int64           // the cap at the end (adaptive runs)
}

// overload serves a handler that stands for a backend with one worker
// (each request holds it for 5ms), and sends it far more concurrent
// requests than it can serve, for a fixed time.
func overload(t *testing.T, cfg Config) overloadResult {
	t.Helper()
	s := newTestServer(t, cfg)
	var worker sync.Mutex
	var inside, peak atomic.Int64
	s.Echo().GET("/work", func(c echo.Context) error {
		n := inside.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		worker.Lock()
		time.Sleep(5 * time.Millisecond)
		worker.Unlock()
		inside.Add(-1)
		return c.String(http.StatusOK, "done")
	})
	// Latency is measured in the server, around the whole chain, so that
	// the client side of this shared machine does not blur it.
	var mu sync.Mutex
	var res overloadResult
	chain := s.Server().Handler
	s.Server().Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		chain.ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			took := time.Since(start)
			mu.Lock()
			res.admitted = append(res.admitted, took)
			mu.Unlock()
		}
	})
	url := startServer(t, s) + "/work"
	hc := testClient(t)

	const clients = 24
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := hc.Get(url)
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				_ = resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode == http.StatusOK:
				case resp.StatusCode == http.StatusServiceUnavailable:
					res.shed++
					if resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
						res.badShed++
					}
				default:
					res.other++
				}
				mu.Unlock()
				if resp.StatusCode != http.StatusOK {
					time.Sleep(20 * time.Millisecond) // a polite client backs off
				}
			}
		})
	}
	wg.Wait()
	res.peak = peak.Load()
	if s.shed != nil {
		res.lastLimit = s.shed.Limit()
	}
	return res
}

func TestSheddingKeepsAdmittedLatencyBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("overload runs take a few seconds")
	}
	open := overload(t, Config{MaxInFlight: -1})
	t.Logf("no cap:        %s, shed %d", fmtDurations(open.admitted), open.shed)
	capped := overload(t, Config{MaxInFlight: 2})
	t.Logf("cap 2:         %s, shed %d, peak in handler %d", fmtDurations(capped.admitted), capped.shed, capped.peak)
	adaptive := overload(t, Config{MaxInFlight: 64, ShedLatency: 20 * time.Millisecond, MinInFlight: 1})
	t.Logf("adaptive 20ms: %s, shed %d, peak in handler %d, cap now %d", fmtDurations(adaptive.admitted), adaptive.shed, adaptive.peak, adaptive.lastLimit)

	for name, r := range map[string]overloadResult{"no cap": open, "cap": capped, "adaptive": adaptive} {
		if r.other != 0 || r.badShed != 0 || len(r.admitted) == 0 {
			t.Errorf("%s: %d unexpected answers, %d shed answers without Retry-After or problem+json, %d served", name, r.other, r.badShed, len(r.admitted))
		}
	}
	if open.shed != 0 {
		t.Errorf("no cap: %d requests shed", open.shed)
	}
	if capped.shed == 0 || capped.peak > 2 {
		t.Errorf("cap 2: %d shed, peak %d in the handler; want shedding and at most 2 inside", capped.shed, capped.peak)
	}
	// The behaviour under test: without a cap every admitted request waits
	// behind all the others; with one, behind at most the cap (the peak
	// above). The latencies are compared with each other, not with a
	// constant, and by median: this machine is shared and its tail is noise.
	if p50o, p50c := percentile(open.admitted, 50), percentile(capped.admitted, 50); p50c*2 > p50o {
		t.Errorf("median with cap %s, without %s: shedding did not bound the latency of admitted requests", p50c, p50o)
	}
	if adaptive.shed == 0 || adaptive.lastLimit >= 64 {
		t.Errorf("adaptive: %d shed, cap %d: want the cap lowered below 64 and requests shed", adaptive.shed, adaptive.lastLimit)
	}
	if p50o, p50a := percentile(open.admitted, 50), percentile(adaptive.admitted, 50); p50a >= p50o {
		t.Errorf("median adaptive %s, without cap %s: the adaptive cap did not help", p50a, p50o)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
