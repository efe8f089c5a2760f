package balancer

import (
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// staticPool is a pool over n fake endpoints, for the policies alone.
func staticPool(t testing.TB, n int, cfg Config) *Pool {
	t.Helper()
	for i := range n {
		cfg.Endpoints = append(cfg.Endpoints, fmt.Sprintf("http://10.0.%d.%d:8080", i/250, i%250+1))
	}
	return newPool(t, cfg)
}

func TestTwoDistinct(t *testing.T) {
	counts := make([]int, 5)
	for range 50000 {
		i, j := twoDistinct(5)
		if i == j {
			t.Fatal("same endpoint twice")
		}
		counts[i]++
		counts[j]++
	}
	for _, c := range counts {
		if math.Abs(float64(c)-20000) > 1000 {
			t.Fatalf("not uniform: %v", counts)
		}
	}
}

func TestLeastRequestNeverPicksTheBusyOneOfTwo(t *testing.T) {
	p := staticPool(t, 2, Config{Policy: PolicyLeastRequest})
	busy := p.eps[0]
	busy.inflight.Store(5)
	req := httptest.NewRequest("GET", "/", nil)
	for range 1000 {
		if p.pick(req, nil) == busy {
			t.Fatal("picked the busy endpoint: the two choices were not distinct")
		}
	}
}

func TestEWMAColdStartDoesNotFlood(t *testing.T) {
	p := staticPool(t, 3, Config{Policy: PolicyP2CEWMA})
	now := time.Now().UnixNano()
	for _, e := range p.eps {
		e.record(20*time.Millisecond, true, now)
		e.inflight.Store(3)
	}
	if err := p.Add(Endpoint{URL: "http://10.9.9.9:8080"}); err != nil {
		t.Fatal(err)
	}
	fresh := p.eps[3]
	req := httptest.NewRequest("GET", "/", nil)
	// Until it answers, the new endpoint has at most one request at a time.
	for range 1000 {
		e := p.pick(req, nil)
		if e == fresh {
			if fresh.inflight.Load() > 0 {
				t.Fatal("a second request went to an endpoint with no latency sample yet")
			}
			fresh.inflight.Add(1)
		}
	}
	if fresh.inflight.Load() != 1 {
		t.Fatal("the new endpoint was never tried")
	}
	// Once it has answered fast, it takes its share and more.
	fresh.inflight.Store(0)
	fresh.record(5*time.Millisecond, true, time.Now().UnixNano())
	got := 0
	for range 1000 {
		if p.pick(req, nil) == fresh {
			got++
		}
	}
	if got < 300 {
		t.Fatalf("the fast new endpoint got %d of 1000", got)
	}
}

func TestWeightedPolicies(t *testing.T) {
	for _, policy := range []Policy{PolicyRoundRobin, PolicyRandom} {
		p := staticPool(t, 3, Config{Policy: policy})
		if err := p.SetWeight(p.eps[2].key, 2); err != nil {
			t.Fatal(err)
		}
		counts := map[*endpoint]int{}
		req := httptest.NewRequest("GET", "/", nil)
		for range 40000 {
			counts[p.pick(req, nil)]++
		}
		if c := counts[p.eps[2]]; math.Abs(float64(c)-20000) > 800 {
			t.Fatalf("%s: weight 2 of 4 got %d of 40000", policy, c)
		}
	}
}

func TestFirstPolicyFailsOverInOrder(t *testing.T) {
	p := staticPool(t, 3, Config{Policy: PolicyFirst})
	req := httptest.NewRequest("GET", "/", nil)
	if p.pick(req, nil) != p.eps[0] {
		t.Fatal("first is not first")
	}
	if e := p.pick(req, p.eps[:1]); e == p.eps[0] {
		t.Fatal("retry went to the same endpoint")
	}
}

func hashed(p *Pool, keys []string) map[string]*endpoint {
	m := map[string]*endpoint{}
	for _, k := range keys {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-User", k)
		m[k] = p.pick(req, nil)
	}
	return m
}

func TestAffinityKeysStickAndMoveMinimally(t *testing.T) {
	p := staticPool(t, 5, Config{Policy: PolicyHash, HashKey: "header:x-user"})
	var keys []string
	for i := range 2000 {
		keys = append(keys, fmt.Sprintf("user-%d", i))
	}
	before := hashed(p, keys)
	if again := hashed(p, keys); fmt.Sprint(again) != fmt.Sprint(before) {
		t.Fatal("keys do not stick")
	}
	perEndpoint := map[*endpoint]int{}
	for _, e := range before {
		perEndpoint[e]++
	}
	for e, n := range perEndpoint {
		if n < 250 || n > 550 {
			t.Fatalf("%s holds %d of 2000 keys: ring badly balanced", e.key, n)
		}
	}

	if err := p.Add(Endpoint{URL: "http://10.1.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	added := p.eps[5]
	after := hashed(p, keys)
	moved := 0
	for _, k := range keys {
		if after[k] != before[k] {
			moved++
			if after[k] != added {
				t.Fatalf("key %s moved between old endpoints", k)
			}
		}
	}
	// Ideal: 1/6 of the keys move, all to the new endpoint.
	if frac := float64(moved) / float64(len(keys)); frac < 0.08 || frac > 0.28 {
		t.Fatalf("%.2f of the keys moved; want about 1/6", frac)
	}

	// Removing it moves exactly those keys back.
	p.mu.Lock()
	p.forget(added)
	p.mu.Unlock()
	if back := hashed(p, keys); fmt.Sprint(back) != fmt.Sprint(before) {
		t.Fatal("removing the endpoint did not restore the mapping")
	}
}

func TestHashBoundedLoad(t *testing.T) {
	p := staticPool(t, 4, Config{Policy: PolicyHash, HashKey: "header:X-User"})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-User", "hot")
	home := p.pick(req, nil)
	home.inflight.Store(10)
	p.inflight.Store(10)
	if e := p.pick(req, nil); e == home {
		t.Fatal("a full endpoint still got its key")
	}
	home.inflight.Store(0)
	p.inflight.Store(0)
	if p.pick(req, nil) != home {
		t.Fatal("the key did not come home")
	}
}

func TestHashKeySources(t *testing.T) {
	req := httptest.NewRequest("GET", "/cart/42", nil)
	req.RemoteAddr = "192.0.2.7:51234"
	req.Header.Set("Cookie", `theme=dark; sid="s-99"; x=1`)
	req.Header.Set("X-Tenant", "acme")
	for src, want := range map[string]string{
		"header:x-tenant": "acme", "cookie:sid": "s-99", "client_addr": "192.0.2.7", "path": "/cart/42",
	} {
		k, err := parseHashKey(src)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := k.of(req); !ok || got != want {
			t.Errorf("%s: got %q %v, want %q", src, got, ok, want)
		}
	}
	k, _ := parseHashKey("cookie:missing")
	if _, ok := k.of(req); ok {
		t.Error("missing cookie found")
	}
	ctxReq := req.WithContext(WithAffinityKey(req.Context(), "order-7"))
	if got, _ := k.of(ctxReq); got != "order-7" {
		t.Errorf("context key: %q", got)
	}
	// A request without a key is still served.
	p := staticPool(t, 3, Config{Policy: PolicyHash, HashKey: "header:X-User"})
	if p.pick(httptest.NewRequest(http.MethodGet, "/", nil), nil) == nil {
		t.Fatal("no endpoint for a keyless request")
	}
}

func TestEWMAAvoidsFastFailures(t *testing.T) {
	p := staticPool(t, 2, Config{Policy: PolicyP2CEWMA})
	good, bad := p.eps[0], p.eps[1]
	now := time.Now().UnixNano()
	// Both answer in 10ms; bad fails half its requests (fast, as errors do).
	for i := range 6000 { // 30s: three time constants
		now += int64(5 * time.Millisecond)
		good.record(10*time.Millisecond, true, now)
		bad.record(10*time.Millisecond, i%2 == 0, now)
	}
	p.clock.Store(now)
	if s := bad.success(now); s < 0.4 || s > 0.6 {
		t.Fatalf("success ratio of a 50%% failing endpoint: %.2f", s)
	}
	req := httptest.NewRequest("GET", "/", nil)
	for range 100 {
		if p.pick(req, nil) != good {
			t.Fatal("picked the failing endpoint")
		}
	}
	// Idle, the failing endpoint is forgiven little by little.
	if s := bad.success(now + int64(time.Minute)); s < 0.9 {
		t.Fatalf("success after a quiet minute: %.2f", s)
	}
}
