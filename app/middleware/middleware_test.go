package middleware_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/app/middleware"
	"github.com/threetier/threetier/tier"
)

// bareEcho is an Echo app with one middleware and the tier's error
// handler, as a user of another framework would compose it.
func bareEcho(mw echo.MiddlewareFunc, h echo.HandlerFunc) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = app.ErrorHandler(nil, nil)
	e.Use(mw)
	e.Any("/x", h)
	return e
}

func serveBare(e *echo.Echo, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return w
}

func TestMiddlewareAlone(t *testing.T) {
	ok := func(c echo.Context) error { return c.String(http.StatusOK, tier.RequestID(c.Request().Context())) }

	t.Run("RequestID", func(t *testing.T) {
		e := bareEcho(middleware.RequestID(), ok)
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.Header.Set(tier.HeaderRequestID, "mine")
		if w := serveBare(e, r); w.Body.String() != "mine" || w.Header().Get(tier.HeaderRequestID) != "mine" {
			t.Fatalf("%q %q", w.Body, w.Header().Get(tier.HeaderRequestID))
		}
		e = bareEcho(middleware.RequestIDWithConfig(middleware.RequestIDConfig{Generator: func() string { return "made" }}), ok)
		if w := serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil)); w.Body.String() != "made" {
			t.Fatalf("generated %q", w.Body)
		}
	})
	t.Run("Recover", func(t *testing.T) {
		e := bareEcho(middleware.Recover(), func(echo.Context) error { panic("boom") })
		w := serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil))
		if w.Code != 500 || w.Header().Get("Content-Type") != tier.ContentTypeProblem {
			t.Fatalf("%d %q", w.Code, w.Header().Get("Content-Type"))
		}
	})
	t.Run("AccessLog", func(t *testing.T) {
		var out bytes.Buffer
		e := bareEcho(middleware.AccessLogWithConfig(middleware.AccessLogConfig{AccessLogConfig: tier.AccessLogConfig{Format: tier.AccessLogJSON, Output: &out}}), ok)
		serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil))
		if !strings.Contains(out.String(), `"route":"/x","status":200`) {
			t.Fatalf("line %s", out.String())
		}
	})
	t.Run("Metrics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e := bareEcho(middleware.Metrics(reg), ok)
		serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil))
		serveBare(e, httptest.NewRequest(http.MethodGet, "/none", nil))
		if n := testutil.CollectAndCount(reg, "threetier_app_requests_total"); n != 2 {
			t.Fatalf("%d series, want /x 200 and unmatched 404", n)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		e := bareEcho(middleware.TimeoutWithConfig(middleware.TimeoutConfig{Timeout: time.Millisecond}), func(c echo.Context) error {
			<-c.Request().Context().Done()
			return c.Request().Context().Err()
		})
		if w := serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil)); w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%d, want 503", w.Code)
		}
	})
	t.Run("Shed", func(t *testing.T) {
		hold, in := make(chan struct{}), make(chan struct{})
		e := bareEcho(middleware.ShedWithConfig(middleware.ShedConfig{MaxInFlight: 1}), func(c echo.Context) error {
			in <- struct{}{}
			<-hold
			return c.NoContent(http.StatusOK)
		})
		done := make(chan int)
		go func() { done <- serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil)).Code }()
		<-in
		w := serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil))
		close(hold)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" || <-done != http.StatusOK {
			t.Fatalf("%d %q", w.Code, w.Header().Get("Retry-After"))
		}
	})
	t.Run("BodyLimit", func(t *testing.T) {
		e := bareEcho(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{MaxBodyBytes: 4}), ok)
		if w := serveBare(e, httptest.NewRequest(http.MethodPost, "/x", strings.NewReader("too long"))); w.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d, want 413", w.Code)
		}
	})
}

func TestRecoverPassesAbort(t *testing.T) {
	e := bareEcho(middleware.Recover(), func(echo.Context) error { panic(http.ErrAbortHandler) })
	defer func() {
		if v := recover(); !errors.Is(v.(error), http.ErrAbortHandler) {
			t.Fatalf("recovered %v", v)
		}
	}()
	serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil))
	t.Fatal("http.ErrAbortHandler was swallowed")
}

// Nothing goes to Prometheus's global registry: without a registry the
// series go nowhere.
func TestMetricsWithoutRegistryStayOffTheGlobalOne(t *testing.T) {
	e := bareEcho(middleware.Metrics(nil), func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	serveBare(e, httptest.NewRequest(http.MethodGet, "/x", nil))
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "threetier_") {
			t.Fatalf("%s registered on the global registry", f.GetName())
		}
	}
	if cfg := middleware.DefaultMetricsConfig(); cfg.Registerer != nil {
		t.Fatalf("the default config registers on %T", cfg.Registerer)
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
	}, middleware.TimeoutWithConfig(middleware.TimeoutConfig{Timeout: time.Second}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(tier.HeaderTimeout, "200ms")
	e.ServeHTTP(httptest.NewRecorder(), req)
	if budget > 200*time.Millisecond || budget < 150*time.Millisecond {
		t.Errorf("the handler had %v; want the caller's 200ms", budget)
	}
}
