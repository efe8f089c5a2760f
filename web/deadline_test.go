package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/tier"
)

// The forwarded request takes what is left of ForwardConfig.ResponseTimeout to the
// app tier, shortened by the caller's deadline but never lengthened.
func TestForwardSendsTheDeadline(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng engine) {
		got := make(chan string, 1)
		app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Get(tier.HeaderTimeout)
			// No connection kept past the test, to close later under the
			// next one, which counts descriptors.
			w.Header().Set("Connection", "close")
		}))
		t.Cleanup(app.Close)
		pool := newPool(t, balancer.Config{Endpoints: []string{app.URL}})
		s := startServer(t, eng, Config{}, WithForward(pool, ForwardConfig{Prefix: "/api/", ResponseTimeout: 2 * time.Second}))
		hc := client(t)
		for _, c := range []struct {
			sent string
			want time.Duration
		}{
			{"", 2 * time.Second},
			{"400ms", 400 * time.Millisecond},
			{"99999999ms", 2 * time.Second},
			{"tomorrow", 2 * time.Second},
		} {
			var headers []string
			if c.sent != "" {
				headers = append(headers, tier.HeaderTimeout+": "+c.sent)
			}
			if r := do(t, hc, "GET", "http://"+s.Addr()+"/api/x", headers...); r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			v := <-got
			d, err := tier.ParseTimeout(v)
			if err != nil || d > c.want || d < c.want-100*time.Millisecond {
				t.Errorf("sent %q: the app tier got %q (%v); want at most %v", c.sent, v, err, c.want)
			}
		}
	})
}
