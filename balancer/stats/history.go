package stats

import (
	"context"
	"sync"
	"time"

	"github.com/threetier/threetier/balancer"
)

// historySamples is how many samples an endpoint's History keeps: five
// minutes at the default Config.SampleInterval.
const historySamples = 60

// History is an endpoint's recent load, one sample per
// Config.SampleInterval, oldest first, taken while the Stats tier runs.
type History struct {
	// Interval is the time between two samples.
	Interval time.Duration `json:"interval_ns"`
	// Last is when the newest sample was taken; zero before the first.
	Last time.Time `json:"last,omitzero"`
	// RequestsPerSecond is, for each interval, the requests the endpoint
	// was sent, per second.
	RequestsPerSecond []float64 `json:"requests_per_second"`
	// Latency is the endpoint's latency average (EWMA) at each sample.
	Latency []time.Duration `json:"latency_ns"`
}

// endpointKey names an endpoint of a pool.
type endpointKey struct{ pool, url string }

// ring is one endpoint's last samples, in a fixed array.
type ring struct {
	requests uint64    // the endpoint's request count at the last round
	at       time.Time // when that was
	last     time.Time // when the newest sample was taken
	n, next  int       // samples held; where the next one goes
	rps      [historySamples]float64
	latency  [historySamples]time.Duration
}

func (r *ring) push(at time.Time, rps float64, latency time.Duration) {
	r.last = at
	r.rps[r.next], r.latency[r.next] = rps, latency
	r.next = (r.next + 1) % historySamples
	r.n = min(r.n+1, historySamples)
}

// history samples the endpoints of the pools every interval between start
// and stop, keeping historySamples of each.
type history struct {
	pools    []*balancer.Pool
	interval time.Duration

	mu    sync.Mutex
	rings map[endpointKey]*ring

	runMu  sync.Mutex // serializes start and stop
	cancel context.CancelFunc
	done   chan struct{}
}

func newHistory(pools []*balancer.Pool, interval time.Duration) *history {
	return &history{pools: pools, interval: interval, rings: make(map[endpointKey]*ring)}
}

// start begins sampling, at once and then every interval, until stop.
func (h *history) start() {
	h.runMu.Lock()
	defer h.runMu.Unlock()
	if h.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx, h.done)
}

// stop ends sampling and waits for the sampler; what was sampled stays.
func (h *history) stop() {
	h.runMu.Lock()
	defer h.runMu.Unlock()
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
	h.cancel, h.done = nil, nil
}

func (h *history) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(h.interval)
	defer t.Stop()
	h.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.sample(now)
		}
	}
}

// sample records each endpoint's requests per second since the previous
// sample, and its latency now. An endpoint seen for the first time (or
// again after its count went back, as when it is removed and added) gets
// its first sample at the next round; the rings of endpoints that left
// go.
func (h *history) sample(now time.Time) {
	seen := make(map[endpointKey]bool, len(h.rings))
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.pools {
		for _, e := range p.Snapshot() {
			k := endpointKey{p.Name(), e.URL}
			seen[k] = true
			r := h.rings[k]
			switch {
			case r == nil:
				h.rings[k] = &ring{requests: e.Requests, at: now}
				continue
			case e.Requests >= r.requests && now.After(r.at):
				r.push(now, float64(e.Requests-r.requests)/now.Sub(r.at).Seconds(), e.EWMA)
			}
			r.requests, r.at = e.Requests, now
		}
	}
	for k := range h.rings {
		if !seen[k] {
			delete(h.rings, k)
		}
	}
}

// of returns the samples of pool's endpoint url, oldest first.
func (h *history) of(pool, url string) History {
	out := History{Interval: h.interval, RequestsPerSecond: []float64{}, Latency: []time.Duration{}}
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rings[endpointKey{pool, url}]
	if r == nil || r.n == 0 {
		return out
	}
	out.Last = r.last.UTC()
	out.RequestsPerSecond = make([]float64, 0, r.n)
	out.Latency = make([]time.Duration, 0, r.n)
	for i := range r.n {
		j := (r.next - r.n + i + historySamples) % historySamples
		out.RequestsPerSecond = append(out.RequestsPerSecond, r.rps[j])
		out.Latency = append(out.Latency, r.latency[j])
	}
	return out
}
