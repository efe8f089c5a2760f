package balancer

import (
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// weightScale makes room for slow start: effective weights are configured
// weights times this, ramped down to a tenth of it while warming up.
const weightScale = 10

// endpoint is one upstream instance. Everything the request path reads or
// writes is atomic; mu guards only the rarely touched check bookkeeping and
// the latency average's read-modify-write.
type endpoint struct {
	url    *url.URL    // scheme and host only
	key    string      // url.String(), the identity of the endpoint
	backup atomic.Bool // discovery may change it (SRV priority)
	static bool        // from Config or Add, so discovery never removes it

	weight    atomic.Int32 // configured, 1 to MaxWeight
	inflight  atomic.Int64
	requests  atomic.Uint64 // attempts sent
	failures  atomic.Uint64 // attempts that failed (transport error or 5xx)
	consec    atomic.Int32  // failures in a row, for outlier detection
	ejections atomic.Uint32 // total
	streak    atomic.Uint32 // ejections without a good spell between; sets the next one's length
	backAt    atomic.Int64  // unix nanos when the last ejection ended
	ejectedTo atomic.Int64  // unix nanos until which it is ejected; 0 = not
	ejectedAt atomic.Int64  // unix nanos when the current or last ejection began
	down      atomic.Bool   // failed its active health checks
	draining  atomic.Bool
	removed   atomic.Bool
	warmFrom  atomic.Int64 // unix nanos when slow start began; 0 = none

	// peerEjected and peerDown mark an ejection or a down that peers
	// reported (ApplyPeers) rather than this pool's own observation.
	peerEjected atomic.Bool
	peerDown    atomic.Bool

	ewmaBits  atomic.Uint64 // float64 seconds; 0 = no sample yet
	ewmaStamp atomic.Int64  // unix nanos of the last sample
	okBits    atomic.Uint64 // float64 share of attempts that succeeded, averaged like the latency
	okStamp   atomic.Int64

	mu        sync.Mutex
	checkAt   time.Time
	checkErr  string
	checkOK   bool
	checkRun  int // passes (>0) or failures (<0) in a row
	decayTime time.Duration
}

func newEndpoint(u *url.URL, weight int, backup, static bool, decay time.Duration) *endpoint {
	e := &endpoint{url: u, key: u.String(), static: static, decayTime: decay}
	e.backup.Store(backup)
	e.okBits.Store(math.Float64bits(1))
	e.okStamp.Store(time.Now().UnixNano())
	e.weight.Store(int32(weight))
	return e
}

// available reports whether the endpoint may get new requests, judged by its
// own state.
func (e *endpoint) available(now int64) bool {
	return !e.down.Load() && !e.draining.Load() && !e.removed.Load() && !e.ejected(now)
}

func (e *endpoint) ejected(now int64) bool {
	to := e.ejectedTo.Load()
	return to != 0 && now < to
}

// effectiveWeight is the scaled weight, ramped during slow start: from a
// tenth of the weight at the start of the window to all of it at the end.
func (e *endpoint) effectiveWeight(now int64, window time.Duration) int32 {
	w := e.weight.Load() * weightScale
	from := e.warmFrom.Load()
	if from == 0 || window <= 0 {
		return w
	}
	elapsed := time.Duration(now - from)
	if elapsed >= window {
		return w
	}
	f := max(0.1, float64(elapsed)/float64(window))
	return max(1, int32(math.Round(float64(w)*f)))
}

// record folds one attempt into the endpoint's averages: its latency (when
// d ≥ 0; a transport error has none worth keeping) and whether it
// succeeded.
//
// Latency is a peak EWMA: a slower sample is taken at once (so a degrading
// endpoint is avoided quickly), faster ones pull the average down with time
// constant decayTime. The success ratio is averaged the same way, so that a
// fast-failing endpoint does not look like the fastest one.
func (e *endpoint) record(d time.Duration, ok bool, now int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d >= 0 {
		sample := d.Seconds()
		cur := math.Float64frombits(e.ewmaBits.Load())
		if cur == 0 || sample > cur {
			cur = sample
		} else {
			w := math.Exp(-float64(now-e.ewmaStamp.Load()) / float64(e.decayTime))
			cur = cur*w + sample*(1-w)
		}
		e.ewmaBits.Store(math.Float64bits(cur))
		e.ewmaStamp.Store(now)
	}
	x := 0.0
	if ok {
		x = 1
	}
	cur := math.Float64frombits(e.okBits.Load())
	w := math.Exp(-float64(max(now-e.okStamp.Load(), 0)) / float64(e.decayTime))
	e.okBits.Store(math.Float64bits(cur*w + x*(1-w)))
	e.okStamp.Store(now)
}

// success returns the success ratio, recovering toward 1 while the
// endpoint is idle (hyperbolically, like ewma).
func (e *endpoint) success(now int64) float64 {
	cur := math.Float64frombits(e.okBits.Load())
	idle := now - e.okStamp.Load()
	if idle <= 0 || cur >= 1 {
		return cur
	}
	tau := float64(e.decayTime)
	return 1 - (1-cur)*tau/(tau+float64(idle))
}

// ewma returns the latency average decayed toward zero for the time since
// the last sample, so that an endpoint which was slow once and then got no
// traffic is tried again. The decay here is hyperbolic (halved after one
// time constant), which costs a division where exp would cost more than the
// rest of a pick.
func (e *endpoint) ewma(now int64) float64 {
	cur := math.Float64frombits(e.ewmaBits.Load())
	if cur == 0 {
		return 0
	}
	idle := now - e.ewmaStamp.Load()
	if idle <= 0 {
		return cur
	}
	tau := float64(e.decayTime)
	return cur * tau / (tau + float64(idle))
}
