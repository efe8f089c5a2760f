package stats

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/internal/balancertest"
	"github.com/threetier/threetier/internal/wait"
)

// TestHistoryKeepsTheLastSamples: each round turns the requests since the
// previous one into requests per second, the ring keeps the newest
// historySamples of them in order, and an endpoint that leaves takes its
// ring with it.
func TestHistoryKeepsTheLastSamples(t *testing.T) {
	a, b := balancertest.NewBackend(t), balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL, b.URL}, Policy: balancer.PolicyFirst})
	h := newHistory([]*balancer.Pool{p}, 5*time.Second)
	at := time.Unix(1_700_000_000, 0)
	h.sample(at) // the baseline: no sample yet
	if got := h.of("app", a.URL); len(got.RequestsPerSecond) != 0 || !got.Last.IsZero() || got.Interval != 5*time.Second {
		t.Fatalf("after the first round: %+v", got)
	}
	const rounds = historySamples + 7
	for i := range rounds {
		for range i % 4 {
			if code, _, err := balancertest.Get(t, p.Client(), "http://app/"); err != nil || code != 200 {
				t.Fatalf("%d %v", code, err)
			}
		}
		at = at.Add(2 * time.Second) // the sampler's own clock, not the interval, makes the rate
		h.sample(at)
	}
	got := h.of("app", a.URL)
	if len(got.RequestsPerSecond) != historySamples || len(got.Latency) != historySamples || !got.Last.Equal(at) {
		t.Fatalf("%d and %d samples, last %v; want %d, last %v", len(got.RequestsPerSecond), len(got.Latency), got.Last, historySamples, at)
	}
	for j, rps := range got.RequestsPerSecond {
		i := rounds - historySamples + j // the round the sample is from
		if want := float64(i%4) / 2; rps != want {
			t.Fatalf("sample %d (round %d): %v requests/s, want %v", j, i, rps, want)
		}
		if (got.Latency[j] > 0) != (i > 0) {
			t.Fatalf("sample %d: latency %v", j, got.Latency[j])
		}
	}
	if got := h.of("app", b.URL); len(got.RequestsPerSecond) != historySamples || got.RequestsPerSecond[historySamples-1] != 0 {
		t.Fatalf("the idle endpoint: %+v", got)
	}

	if err := p.Remove(context.Background(), b.URL); err != nil {
		t.Fatal(err)
	}
	h.sample(at.Add(time.Second))
	if got := h.of("app", b.URL); len(got.RequestsPerSecond) != 0 {
		t.Fatalf("a removed endpoint keeps %d samples", len(got.RequestsPerSecond))
	}
	if _, ok := h.rings[endpointKey{"app", b.URL}]; ok {
		t.Fatal("a removed endpoint keeps its ring")
	}
}

// TestStatsHistoryInTheJSONAndOnThePage: a running Stats samples the
// endpoints, its JSON carries each endpoint's series, and the page draws
// them as one sparkline per endpoint. (TestMain checks that Stop ended
// the sampler.)
func TestStatsHistoryInTheJSONAndOnThePage(t *testing.T) {
	a, b := balancertest.NewBackend(t), balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "web", Endpoints: []string{a.URL, b.URL}, Policy: balancer.PolicyFirst})
	ss := newStatsServer(t, Config{SampleInterval: 20 * time.Millisecond}, []*balancer.Pool{p})
	busy := func(r Report) History { return r.Pools[0].Endpoints[0].History }
	wait.For(t, 10*time.Second, "samples with requests", func() bool {
		_, _, _ = balancertest.Get(t, p.Client(), "http://web/")
		h := busy(ss.report())
		return len(h.RequestsPerSecond) >= 3 && h.RequestsPerSecond[len(h.RequestsPerSecond)-1] > 0
	})
	r := ss.report()
	h := busy(r)
	if h.Interval != 20*time.Millisecond || h.Last.IsZero() || len(h.Latency) != len(h.RequestsPerSecond) || len(h.RequestsPerSecond) > historySamples {
		t.Fatalf("history of the busy endpoint: %+v", h)
	}
	if h.Latency[len(h.Latency)-1] <= 0 {
		t.Fatalf("no latency in %+v", h)
	}
	if idle := r.Pools[0].Endpoints[1].History; len(idle.RequestsPerSecond) == 0 || idle.RequestsPerSecond[len(idle.RequestsPerSecond)-1] != 0 {
		t.Fatalf("history of the idle endpoint: %+v", idle)
	}

	_, page := ss.do("GET", "/", "", "", "")
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{a.URL, b.URL} {
		cells := findAll(doc, func(n *html.Node) bool {
			f, _ := attr(n, "data-field")
			return f == "history" && n.Parent != nil && hasAttr(n.Parent, "data-endpoint", url)
		})
		if len(cells) != 1 {
			t.Fatalf("%s: %d history cells", url, len(cells))
		}
		n, _ := attr(cells[0], "data-samples")
		samples, _ := strconv.Atoi(n)
		lines := findAll(cells[0], func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "polyline" })
		if samples < 3 || len(lines) != 2 {
			t.Fatalf("%s: %d samples, %d polylines", url, samples, len(lines))
		}
		for _, l := range lines {
			pts, _ := attr(l, "points")
			if got := len(strings.Fields(pts)); got != samples {
				t.Errorf("%s: %d points for %d samples", url, got, samples)
			}
		}
		if titles := findAll(cells[0], func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "title" }); len(titles) != 1 || !strings.Contains(textOf(titles[0]), "requests/s") {
			t.Errorf("%s: the sparkline says nothing of its figures", url)
		}
	}
}

func hasAttr(n *html.Node, key, value string) bool {
	v, ok := attr(n, key)
	return ok && v == value
}
