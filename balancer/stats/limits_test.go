package stats

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/internal/balancertest"
	"github.com/threetier/threetier/balancer/ratelimit"
)

func TestStatsShowTopClientsAndSteerBlocks(t *testing.T) {
	l, err := ratelimit.New(ratelimit.Config{Rate: 2, Burst: 2})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for range 5 {
		l.Allow("203.0.113.7", now)
	}
	l.Allow("198.51.100.1", now)
	pool := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{"http://127.0.0.1:1"}})
	ss := newStatsServer(t, Config{Token: "secret"}, []*balancer.Pool{pool}, WithRateLimiter(l))

	rep := ss.report().RateLimits
	if rep == nil || rep.Limited != 3 || rep.Keys != 2 || len(rep.Top) != 2 || rep.Top[0].Key != "203.0.113.7" || rep.Top[0].Limited != 3 {
		t.Fatalf("rate limits in the report: %+v", rep)
	}
	resp, page := ss.do(http.MethodGet, "/", "", "", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `data-client="203.0.113.7"`) {
		t.Fatalf("the page does not list the top client: %d", resp.StatusCode)
	}

	if resp, _ := ss.do(http.MethodPost, "/api/blocks/block", "", "application/json", `{"key":"192.0.2.1"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("block without the token: %d", resp.StatusCode)
	}
	if resp, _ := ss.do(http.MethodGet, "/api/blocks", "", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("list without the token: %d", resp.StatusCode)
	}
	resp, body := ss.do(http.MethodPost, "/api/blocks/block", "secret", "application/json", `{"key":"192.0.2.1","for":"10m"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("block: %d %s", resp.StatusCode, body)
	}
	if d := l.Allow("192.0.2.1", time.Now()); !d.Blocked || d.RetryAfter < 9*time.Minute {
		t.Fatalf("after the block: %+v", d)
	}
	ss.do(http.MethodPost, "/api/blocks/block", "secret", "application/json", `{"key":"192.0.2.2"}`)
	resp, body = ss.do(http.MethodGet, "/api/blocks", "secret", "", "")
	var blocks []ratelimit.Block
	if err := json.Unmarshal(body, &blocks); err != nil || resp.StatusCode != http.StatusOK || len(blocks) != 2 || !blocks[1].Until.IsZero() {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	if resp, _ := ss.do(http.MethodPost, "/api/blocks/unblock", "secret", "application/json", `{"key":"192.0.2.1"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("unblock: %d", resp.StatusCode)
	}
	if d := l.Allow("192.0.2.1", time.Now()); d.Blocked {
		t.Fatal("still blocked after unblock")
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/blocks/block", `{"for":"10m"}`},
		{http.MethodPost, "/api/blocks/block", `{"key":"k","for":"soon"}`},
		{http.MethodPost, "/api/blocks/ban", `{"key":"k"}`},
		{http.MethodGet, "/api/blocks/block", ``},
	} {
		if resp, body := ss.do(c.method, c.path, "secret", "application/json", c.body); resp.StatusCode < 400 {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, resp.StatusCode, body)
		}
	}
	if rep := ss.report().RateLimits; len(rep.Blocks) != 1 || rep.Blocks[0].Key != "192.0.2.2" {
		t.Fatalf("blocks in the report: %+v", rep.Blocks)
	}
}
