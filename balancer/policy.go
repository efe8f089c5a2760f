package balancer

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// pick chooses the endpoint for one attempt of r, never one in tried (the
// endpoints earlier attempts failed on). It returns nil when no endpoint is
// left. It takes no lock and allocates nothing.
func (p *Pool) pick(r *http.Request, tried []*endpoint) *endpoint {
	return p.pickFor((*stdRequest)(r), tried)
}

// pickFor is pick for a request of either engine.
func (p *Pool) pickFor(r requestView, tried []*endpoint) *endpoint {
	t := p.table.Load()
	n := len(t.eps)
	if n == 0 {
		return nil
	}
	e := p.choose(t, r)
	if !slices.Contains(tried, e) {
		return e
	}
	// A retry: the policy chose an endpoint that already failed this
	// request; take the next one that did not.
	start := rand.IntN(n)
	for i := range n {
		if e := t.eps[(start+i)%n]; !slices.Contains(tried, e) {
			return e
		}
	}
	return nil
}

func (p *Pool) choose(t *table, r requestView) *endpoint {
	switch p.policy {
	case PolicyLeastRequest:
		return leastRequest(t)
	case PolicyP2CEWMA:
		return p2cEWMA(t, p.clock.Load())
	case PolicyHash:
		if key, ok := p.hashKey.from(r); ok {
			return p.hashPick(t, key)
		}
		return leastRequest(t)
	case PolicyFirst:
		return t.eps[0]
	case PolicyRandom:
		if t.sched == nil {
			return t.eps[rand.IntN(len(t.eps))]
		}
		return t.eps[t.sched[rand.IntN(len(t.sched))]]
	default:
		i := p.rr.Add(1)
		if t.sched == nil {
			return t.eps[i%uint64(len(t.eps))]
		}
		return t.eps[t.sched[i%uint64(len(t.sched))]]
	}
}

// twoDistinct returns two different indexes below n (n ≥ 2), uniformly:
// sampling with replacement would compare an endpoint with itself and send
// it more than its share.
func twoDistinct(n int) (int, int) {
	// One random draw, split in two: each half scaled to its range by
	// multiply-and-shift (bias below n/2³², nothing at pool sizes).
	r := rand.Uint64()
	i := int((r & 0xffffffff) * uint64(n) >> 32)
	j := int((r >> 32) * uint64(n-1) >> 32)
	if j >= i {
		j++
	}
	return i, j
}

func leastRequest(t *table) *endpoint {
	if len(t.eps) == 1 {
		return t.eps[0]
	}
	i, j := twoDistinct(len(t.eps))
	a, b := t.eps[i], t.eps[j]
	// (in-flight+1)/weight, compared without division.
	if (a.inflight.Load()+1)*int64(t.w[j]) <= (b.inflight.Load()+1)*int64(t.w[i]) {
		return a
	}
	return b
}

// coldPenalty is the cost of an endpoint with no latency sample yet while a
// request to it is in flight: it gets one request at a time until it has
// answered one, instead of winning every comparison with a cost of zero.
const coldPenalty = 1e6

func p2cEWMA(t *table, now int64) *endpoint {
	if len(t.eps) == 1 {
		return t.eps[0]
	}
	i, j := twoDistinct(len(t.eps))
	if ewmaCost(t.eps[i], t.w[i], now) <= ewmaCost(t.eps[j], t.w[j], now) {
		return t.eps[i]
	}
	return t.eps[j]
}

// ewmaCost is latency × (requests in flight + 1) / weight, divided by the
// success ratio (at least 5%) so that an endpoint answering errors fast
// does not draw the traffic a fast endpoint would.
func ewmaCost(e *endpoint, w int32, now int64) float64 {
	in := float64(e.inflight.Load())
	lat := e.ewma(now)
	if lat == 0 {
		if in > 0 {
			return coldPenalty + in
		}
		return 0
	}
	return lat * (in + 1) / (float64(w) * max(e.success(now), 0.05))
}

// hashPick walks the ring from the key's point to the first endpoint whose
// in-flight count is under the bound (load factor × average, rounded up),
// so that a hot key cannot overload one endpoint.
func (p *Pool) hashPick(t *table, key string) *endpoint {
	rg := t.ring
	if rg == nil || len(rg.hashes) == 0 {
		return t.eps[0]
	}
	pos := rg.search(xxhash.Sum64String(key))
	limit := int64(math.Ceil(p.cfg.HashLoadFactor * float64(p.inflight.Load()+1) / float64(len(t.eps))))
	for k := range len(rg.idx) {
		e := t.eps[rg.idx[(pos+k)%len(rg.idx)]]
		if e.inflight.Load() < limit {
			return e
		}
	}
	return t.eps[rg.idx[pos%len(rg.idx)]]
}

// hashKey says where a request's affinity key comes from.
type hashKey struct {
	kind string // "header", "cookie", "client_addr", "path"
	name string // canonical header name, or cookie name
}

func parseHashKey(s string) (hashKey, error) {
	kind, name, _ := strings.Cut(s, ":")
	switch kind {
	case "header":
		if name == "" {
			return hashKey{}, errors.New("header name missing")
		}
		return hashKey{kind, textproto.CanonicalMIMEHeaderKey(name)}, nil
	case "cookie":
		if name == "" {
			return hashKey{}, errors.New("cookie name missing")
		}
		return hashKey{kind, name}, nil
	case "client_addr", "path":
		if name != "" {
			return hashKey{}, errors.New(kind + " takes no name")
		}
		return hashKey{kind: kind}, nil
	}
	return hashKey{}, errors.New("unknown key source")
}

type affinityKey struct{}

// WithAffinityKey returns a context whose requests the hash policy routes by
// key, whatever Config.HashKey says: for keys that are not in the request.
func WithAffinityKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, affinityKey{}, key)
}

// of returns the request's key without allocating.
func (k hashKey) of(r *http.Request) (string, bool) { return k.from((*stdRequest)(r)) }

// from is of for a request of either engine.
func (k hashKey) from(r requestView) (string, bool) {
	if v, ok := r.context().Value(affinityKey{}).(string); ok {
		return v, true
	}
	switch k.kind {
	case "header":
		if v, _ := r.header(k.name); v != "" {
			return v, true
		}
	case "cookie":
		return r.cookie(k.name)
	case "client_addr":
		addr := r.remoteAddr()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		if addr != "" {
			return addr, true
		}
	case "path":
		if p := r.path(); p != "" {
			return p, true
		}
	}
	return "", false
}

// findCookie finds name=value in one Cookie header line.
func findCookie(line, name string) (string, bool) {
	for line != "" {
		var part string
		part, line, _ = strings.Cut(line, ";")
		part = strings.TrimSpace(part)
		n, v, ok := strings.Cut(part, "=")
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1] // a quoted value (RFC 6265)
		}
		if ok && n == name && v != "" {
			return v, true
		}
	}
	return "", false
}
