package app

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/tier"
)

// The request's context ends at the earlier of RequestTimeout and the
// caller's tier.HeaderTimeout: the header shortens it, never lengthens it,
// and a malformed one is ignored and logged at debug.
func TestServerTakesTheCallersDeadline(t *testing.T) {
	log, logs := newTestLogger(t)
	for _, c := range []struct {
		name    string
		timeout time.Duration // RequestTimeout
		sent    []string
		want    time.Duration // the handler's budget; 0 for none
	}{
		{"none sent", 2 * time.Second, nil, 2 * time.Second},
		{"shorter", 2 * time.Second, []string{"300ms"}, 300 * time.Millisecond},
		{"longer", 2 * time.Second, []string{"99999999ms"}, 2 * time.Second},
		{"malformed", 2 * time.Second, []string{"soon"}, 2 * time.Second},
		{"huge", 2 * time.Second, []string{strings.Repeat("9", 4000) + "ms"}, 2 * time.Second},
		{"two", 2 * time.Second, []string{"900ms", "400ms"}, 400 * time.Millisecond},
		{"no timeout of its own", -1, []string{"700ms"}, 700 * time.Millisecond},
		{"neither", -1, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newTestServer(t, Config{RequestTimeout: c.timeout}, WithLogger(log))
			var budget time.Duration
			s.Echo().GET("/budget", func(ec echo.Context) error {
				if dl, ok := ec.Request().Context().Deadline(); ok {
					budget = time.Until(dl)
				}
				return ec.NoContent(http.StatusNoContent)
			})
			req := httptest.NewRequest(http.MethodGet, "/budget", nil)
			for _, v := range c.sent {
				req.Header.Add(tier.HeaderTimeout, v)
			}
			rec := httptest.NewRecorder()
			s.Echo().ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if budget > c.want || budget < c.want-50*time.Millisecond {
				t.Errorf("the handler had %v; want %v", budget, c.want)
			}
		})
	}
	if !strings.Contains(logs.String(), `"msg":"ignoring the caller's deadline"`) || !strings.Contains(logs.String(), `"level":"DEBUG"`) {
		t.Errorf("no debug line for the malformed header:\n%s", logs)
	}
}

// A handler that fails because the caller's deadline passed answers 503
// within it, naming the budget it had.
func TestServerAnswersWithinTheCallersDeadline(t *testing.T) {
	s := newTestServer(t, Config{RequestTimeout: 10 * time.Second})
	s.Echo().GET("/wait", func(ec echo.Context) error {
		<-ec.Request().Context().Done()
		return ec.Request().Context().Err()
	})
	url := startServer(t, s)
	start := time.Now()
	x := do(t, testClient(t), http.MethodGet, url+"/wait", "", nil, tier.HeaderTimeout, "250ms")
	took := time.Since(start)
	p := checkProblem(t, x, http.StatusServiceUnavailable, "/wait")
	if took > 275*time.Millisecond {
		t.Errorf("answered after %v; want within the caller's 250ms (+10%%)", took)
	}
	if !strings.Contains(p.Detail, "250ms") {
		t.Errorf("detail %q; want it to name the 250ms the request had", p.Detail)
	}
}

// The Timeout middleware alone honours the header as the chain does.
func TestTimeoutMiddlewareTakesTheCallersDeadline(t *testing.T) {
	e := echo.New()
	var budget time.Duration
	e.GET("/", func(ec echo.Context) error {
		dl, _ := ec.Request().Context().Deadline()
		budget = time.Until(dl)
		return nil
	}, TimeoutWithConfig(TimeoutConfig{Timeout: time.Second}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(tier.HeaderTimeout, "200ms")
	e.ServeHTTP(httptest.NewRecorder(), req)
	if budget > 200*time.Millisecond || budget < 150*time.Millisecond {
		t.Errorf("the handler had %v; want the caller's 200ms", budget)
	}
}
