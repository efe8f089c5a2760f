package balancer

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

// budgetBackend is an upstream that notes the tier.HeaderTimeout of every
// request, waits delay (or until the request ends), then answers status.
type budgetBackend struct {
	url    string
	delay  time.Duration
	status int

	mu   sync.Mutex
	seen [][]string // each request's HeaderTimeout values
}

func newBudgetBackend(t *testing.T, delay time.Duration, status int) *budgetBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &budgetBackend{url: "http://" + ln.Addr().String(), delay: delay, status: status}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

func (b *budgetBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		return
	}
	b.mu.Lock()
	b.seen = append(b.seen, r.Header[tier.HeaderTimeout])
	b.mu.Unlock()
	if b.delay > 0 {
		t := time.NewTimer(b.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	if b.status != 0 {
		w.WriteHeader(b.status)
	}
}

// budgets returns the budget each request came with (-1: none).
func (b *budgetBackend) budgets(t *testing.T) []time.Duration {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]time.Duration, len(b.seen))
	for i, vs := range b.seen {
		switch len(vs) {
		case 0:
			out[i] = -1
		case 1:
			d, err := tier.ParseTimeout(vs[0])
			if err != nil {
				t.Fatalf("request %d: %s %q: %v", i, tier.HeaderTimeout, vs[0], err)
			}
			out[i] = d
		default:
			t.Fatalf("request %d: %s sent %d times: %q", i, tier.HeaderTimeout, len(vs), vs)
		}
	}
	return out
}

// last is the budget of the last request (-1: none, or no request).
func (b *budgetBackend) last(t *testing.T) time.Duration {
	all := b.budgets(t)
	if len(all) == 0 {
		return -1
	}
	return all[len(all)-1]
}

// getWith sends a GET with the header values given.
func getWith(t *testing.T, url string, budget ...string) (int, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range budget {
		req.Header.Add(tier.HeaderTimeout, v)
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, time.Since(start)
}

// The proxy sends on what is left of its ResponseTimeout, shortened by
// the caller's header but never lengthened, malformed values ignored; a
// caller with no time left is answered 504 at once, its request never
// sent.
func TestProxySendsWhatIsLeftOfTheDeadline(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		up := newBudgetBackend(t, 0, 0)
		pool := newPool(t, Config{Endpoints: []string{up.url}})
		_, url := startProxyOn(t, engine, ProxyConfig{ResponseTimeout: 2 * time.Second}, []*Pool{pool})
		for _, c := range []struct {
			name   string
			sent   []string
			within time.Duration // the budget upstream is at most this, and not much less
		}{
			{"none", nil, 2 * time.Second},
			{"shorter", []string{"500ms"}, 500 * time.Millisecond},
			{"longer", []string{"99999999ms"}, 2 * time.Second},
			{"malformed", []string{"1s"}, 2 * time.Second},
			{"too long", []string{strings.Repeat("9", 40) + "ms"}, 2 * time.Second},
			{"two values", []string{"1500ms", "300ms"}, 300 * time.Millisecond},
		} {
			status, _ := getWith(t, url+"/", c.sent...)
			got := up.last(t)
			if status != http.StatusOK || got > c.within || got < c.within-100*time.Millisecond {
				t.Errorf("%s (%q): %d, upstream's budget %v; want 200 and at most %v", c.name, c.sent, status, got, c.within)
			}
		}
		before := len(up.budgets(t))
		if status, took := getWith(t, url+"/", "0ms"); status != http.StatusGatewayTimeout || took > time.Second {
			t.Errorf("no time left: %d after %v, want 504 at once", status, took)
		}
		if n := len(up.budgets(t)); n != before {
			t.Errorf("a request with no time left was sent upstream")
		}
	})
}

// Each hop, and each attempt, sends on what is left: behind a first node
// with a deadline of 2s, a second node with none of its own bounds its
// attempts by it, and its retry after an endpoint that took 300ms is sent
// with 300ms less.
func TestDeadlineShrinksHopByHopAndAttemptByAttempt(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		slow := newBudgetBackend(t, 300*time.Millisecond, http.StatusServiceUnavailable)
		fast := newBudgetBackend(t, 0, 0)
		inner := newPool(t, Config{Name: "inner", Endpoints: []string{slow.url, fast.url}, Policy: PolicyRoundRobin})
		_, innerURL := startProxyOn(t, engine, ProxyConfig{ResponseTimeout: -1}, []*Pool{inner})
		outer := newPool(t, Config{Name: "outer", Endpoints: []string{innerURL}})
		_, url := startProxyOn(t, engine, ProxyConfig{ResponseTimeout: 2 * time.Second}, []*Pool{outer})
		for range 4 { // round robin: some requests try the slow endpoint first
			if status, _ := getWith(t, url+"/"); status != http.StatusOK {
				t.Fatalf("status %d, want 200 from the retry", status)
			}
		}
		first, second := slow.budgets(t), fast.budgets(t)
		if len(first) == 0 {
			t.Fatal("the slow endpoint was never tried")
		}
		for _, b := range first {
			if b <= 0 || b > 2*time.Second {
				t.Errorf("the inner node's first attempt had %v; want at most the outer node's 2s", b)
			}
		}
		var retried bool
		for _, b := range second {
			if b <= 0 || b > 2*time.Second {
				t.Errorf("an attempt had %v; want at most the outer node's 2s", b)
			}
			retried = retried || b <= 2*time.Second-300*time.Millisecond
		}
		if !retried {
			t.Errorf("no retry was sent with 300ms less than the first attempt: %v then %v", first, second)
		}
	})
}

// An attempt is cut off by what is left of the deadline, and none starts
// that would have no time: the client has its 504 within the deadline,
// not after every attempt's own timeout.
func TestRetriesFitTheDeadline(t *testing.T) {
	// late is how long after deadline d an answer may come: 10%, or more
	// under the race detector's slowness.
	late := func(d time.Duration) time.Duration {
		if raceEnabled {
			return d + 150*time.Millisecond
		}
		return d + d/10
	}
	forEngine(t, func(t *testing.T, engine string) {
		a := newBudgetBackend(t, 10*time.Second, 0)
		b := newBudgetBackend(t, 10*time.Second, 0)
		pool := newPool(t, Config{Endpoints: []string{a.url, b.url}, Retry: RetryConfig{Attempts: 3, AttemptTimeout: 250 * time.Millisecond}})
		_, url := startProxyOn(t, engine, ProxyConfig{ResponseTimeout: 400 * time.Millisecond}, []*Pool{pool})
		status, took := getWith(t, url+"/")
		if status != http.StatusGatewayTimeout || took > late(400*time.Millisecond) {
			t.Errorf("%d after %v; want 504 within the deadline of 400ms (+10%%)", status, took)
		}
		all := append(a.budgets(t), b.budgets(t)...)
		if len(all) != 2 {
			t.Fatalf("%d attempts (%v); want the first and one retry in the 150ms left", len(all), all)
		}
		if lo, hi := min(all[0], all[1]), max(all[0], all[1]); lo <= 0 || hi > 400*time.Millisecond || lo > 150*time.Millisecond {
			t.Errorf("attempts with %v and %v; want at most 400ms, then what the first 250ms left", hi, lo)
		}

		// An attempt that takes the whole deadline leaves none for a retry.
		_, url = startProxyOn(t, engine, ProxyConfig{ResponseTimeout: 200 * time.Millisecond}, []*Pool{
			newPool(t, Config{Name: "second", Endpoints: []string{a.url, b.url}, Retry: RetryConfig{Attempts: 3, AttemptTimeout: time.Second}}),
		})
		before := len(a.budgets(t)) + len(b.budgets(t))
		status, took = getWith(t, url+"/")
		if status != http.StatusGatewayTimeout || took > late(200*time.Millisecond) {
			t.Errorf("%d after %v; want 504 within the deadline of 200ms (+10%%)", status, took)
		}
		if n := len(a.budgets(t)) + len(b.budgets(t)) - before; n != 1 {
			t.Errorf("%d attempts; want one: no time was left for another", n)
		}
	})
}

// A pool used as a client's transport sends the deadline of the request's
// context, and nothing without one.
func TestPoolSendsTheContextDeadline(t *testing.T) {
	up := newBudgetBackend(t, 0, 0)
	pool := newPool(t, Config{Endpoints: []string{up.url}})
	client := &http.Client{Transport: pool}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, bounded := range []bool{true, false} {
		rctx := context.Background()
		if bounded {
			rctx = ctx
		}
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://svc/", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		got := up.last(t)
		switch {
		case bounded && (got > time.Second || got < 900*time.Millisecond):
			t.Errorf("with a deadline 1s away the endpoint got %v", got)
		case !bounded && got != -1:
			t.Errorf("with no deadline the endpoint got %v", got)
		}
	}
}
