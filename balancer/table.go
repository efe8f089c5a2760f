package balancer

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"
)

// maxSchedule bounds the round-robin schedule of a table; larger weight sums
// are scaled down to it, keeping the ratios.
const maxSchedule = 1 << 16

// ringReplicas is how many points an endpoint of the highest weight gets on
// the hash ring; lighter endpoints get proportionally fewer.
const ringReplicas = 160

// A table is an immutable view of the endpoints that may take new requests
// now, with what each policy needs precomputed. Pick reads the current table
// through one atomic load; every change of state builds a new one.
type table struct {
	eps   []*endpoint
	w     []int32  // effective weight of eps[i]
	sched []uint32 // smooth weighted order of indexes into eps; nil when weights are equal
	ring  *ring    // hash policy only
	// healthy counts the endpoints that are in eps on their own merit (not
	// through panic routing).
	healthy int
	panic   bool
	// rest are the endpoints left out of eps that are neither removed nor
	// draining, the ones most likely to serve first: a request that failed
	// on every endpoint in eps tries them rather than fail while one of
	// them might answer (an instance restarted within its ejection).
	rest []*endpoint
	// backAt is when the first ejected endpoint comes back (unix nanos),
	// zero if none is ejected: the Retry-After of a refusal.
	backAt int64
}

type ring struct {
	sig    uint64
	hashes []uint64
	idx    []uint32 // index into table.eps, by position on the ring
	// lut[b] is the first position whose hash has top bits ≥ b, so that a
	// lookup searches only the few points of one bucket.
	lut   []uint32
	shift uint
}

// search returns the position of the first point at or after h (wrapping
// is left to the caller).
func (r *ring) search(h uint64) int {
	b := h >> r.shift
	lo, hi := int(r.lut[b]), int(r.lut[b+1])
	pos, _ := slices.BinarySearch(r.hashes[lo:hi], h)
	return lo + pos
}

// buildTable chooses the endpoints that take traffic: the available
// primaries, or (when none is) the available backups, or in panic all of
// them. It also returns when the table must be built again (an ejection
// ends, a slow start moves a step), zero if never.
func (p *Pool) buildTable(all []*endpoint, now int64) (*table, int64) {
	var next, backAt int64
	soon := func(t int64) {
		if t > now && (next == 0 || t < next) {
			next = t
		}
	}
	window := p.cfg.SlowStart
	var prim, primUp, back, backUp []*endpoint
	for _, e := range all {
		if e.removed.Load() || e.draining.Load() {
			continue
		}
		if to := e.ejectedTo.Load(); to != 0 {
			if now >= to {
				if p.unEject(e, to, to) {
					p.log.Info("endpoint back from ejection", "endpoint", e.key)
				}
			} else {
				soon(to)
				if backAt == 0 || to < backAt {
					backAt = to
				}
			}
		}
		if from := e.warmFrom.Load(); from != 0 {
			if time.Duration(now-from) >= window {
				e.warmFrom.CompareAndSwap(from, 0)
			} else {
				step := int64(window / 10)
				soon(from + ((now-from)/step+1)*step)
			}
		}
		up := e.available(now)
		if e.backup.Load() {
			back = append(back, e)
			if up {
				backUp = append(backUp, e)
			}
		} else {
			prim = append(prim, e)
			if up {
				primUp = append(primUp, e)
			}
		}
	}
	t := &table{backAt: backAt}
	switch {
	case len(primUp) > 0 && len(primUp)*100 >= p.cfg.PanicThreshold*len(prim):
		t.eps, t.healthy = primUp, len(primUp)
	case len(primUp) > 0:
		t.eps, t.healthy, t.panic = prim, len(primUp), true
	case len(backUp) > 0:
		t.eps, t.healthy = backUp, len(backUp)
	default:
		t.eps, t.panic = append(prim, back...), true
	}
	t.rest = lastResorts(prim, back, t.eps, now)
	t.w = make([]int32, len(t.eps))
	for i, e := range t.eps {
		t.w[i] = e.effectiveWeight(now, window)
	}
	t.sched = buildSchedule(t.w)
	if p.policy == PolicyHash {
		t.ring = p.ringFor(t.eps)
	}
	return t, next
}

// lastResorts returns the endpoints of prim and back that are not in eps,
// the available first, then the ejected whose health checks pass, then the
// down.
func lastResorts(prim, back, eps []*endpoint, now int64) []*endpoint {
	var rest []*endpoint
	for _, e := range slices.Concat(prim, back) {
		if !slices.Contains(eps, e) {
			rest = append(rest, e)
		}
	}
	rank := func(e *endpoint) int {
		switch {
		case e.available(now):
			return 0
		case !e.down.Load():
			return 1
		}
		return 2
	}
	slices.SortStableFunc(rest, func(a, b *endpoint) int { return rank(a) - rank(b) })
	return rest
}

// buildSchedule lays out one round of smooth weighted round robin: each
// endpoint appears in proportion to its weight, spread evenly (earliest
// deadline first, each turn's deadline at the middle of its slot). With equal
// weights it returns nil and the picker cycles through the endpoints.
// Endpoint i's turns sit at phase (i+½)/n of their slots, so that endpoints
// of equal weight do not all fall due at once and bunch up.
func buildSchedule(w []int32) []uint32 {
	if len(w) == 0 {
		return nil
	}
	g, equal := w[0], true
	for _, x := range w[1:] {
		g = gcd(g, x)
		equal = equal && x == w[0]
	}
	if equal {
		return nil
	}
	ws := make([]float64, len(w))
	sum := 0
	for i, x := range w {
		ws[i] = float64(x / g)
		sum += int(x / g)
	}
	if sum > maxSchedule {
		f := float64(maxSchedule) / float64(sum)
		sum = 0
		for i := range ws {
			ws[i] = max(1, float64(int(ws[i]*f)))
			sum += int(ws[i])
		}
	}
	// A binary heap of endpoint indexes ordered by (deadline, index).
	type turn struct {
		deadline float64
		i        uint32
		n        float64
	}
	h := make([]turn, len(ws))
	for i := range ws {
		h[i] = turn{deadline: phase(i, len(ws)) / ws[i], i: uint32(i)}
	}
	less := func(a, b turn) bool {
		return a.deadline < b.deadline || (a.deadline == b.deadline && a.i < b.i)
	}
	down := func(j int) {
		for {
			l := 2*j + 1
			if l >= len(h) {
				return
			}
			m := l
			if r := l + 1; r < len(h) && less(h[r], h[l]) {
				m = r
			}
			if !less(h[m], h[j]) {
				return
			}
			h[j], h[m] = h[m], h[j]
			j = m
		}
	}
	for j := len(h)/2 - 1; j >= 0; j-- {
		down(j)
	}
	sched := make([]uint32, 0, sum)
	for len(sched) < sum {
		top := &h[0]
		sched = append(sched, top.i)
		top.n++
		top.deadline = (top.n + phase(int(top.i), len(ws))) / ws[top.i]
		down(0)
	}
	return sched
}

func phase(i, n int) float64 { return (float64(i) + 0.5) / float64(n) }

func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ringFor returns the hash ring over eps, reusing the last one when the
// endpoints and weights are the same (building one for a thousand endpoints
// takes milliseconds). Points depend only on an endpoint's URL, so adding
// or removing one endpoint moves only the keys it takes or gives back.
func (p *Pool) ringFor(eps []*endpoint) *ring {
	d := xxhash.New()
	var b [8]byte
	maxW := int32(1)
	for _, e := range eps {
		_, _ = d.WriteString(e.key)
		w := e.weight.Load()
		binary.LittleEndian.PutUint32(b[:4], uint32(w))
		_, _ = d.Write(b[:4])
		maxW = max(maxW, w)
	}
	sig := d.Sum64()
	if r := p.lastRing; r != nil && r.sig == sig {
		return r
	}
	type point struct {
		h uint64
		i uint32
	}
	var pts []point
	for i, e := range eps {
		n := max(1, ringReplicas*int(e.weight.Load())/int(maxW))
		for k := range n {
			d.Reset()
			_, _ = d.WriteString(e.key)
			binary.LittleEndian.PutUint64(b[:], uint64(k))
			_, _ = d.Write(b[:])
			pts = append(pts, point{d.Sum64(), uint32(i)})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return int(a.i) - int(b.i)
	})
	r := &ring{sig: sig, hashes: make([]uint64, len(pts)), idx: make([]uint32, len(pts))}
	for j, pt := range pts {
		r.hashes[j], r.idx[j] = pt.h, pt.i
	}
	bits := uint(1)
	for bits < 16 && 1<<bits < len(pts) {
		bits++
	}
	r.shift = 64 - bits
	r.lut = make([]uint32, 1<<bits+1)
	j := 0
	for b := range r.lut {
		for j < len(pts) && pts[j].h>>r.shift < uint64(b) {
			j++
		}
		r.lut[b] = uint32(j)
	}
	p.lastRing = r
	return r
}
