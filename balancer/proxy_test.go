package balancer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

func TestAttemptTimeoutMovesOn(t *testing.T) {
	hung, good := newBackend(t), newBackend(t)
	p := newPool(t, Config{
		Endpoints: []string{hung.url, good.url},
		Policy:    PolicyFirst,
		Retry:     RetryConfig{AttemptTimeout: 100 * time.Millisecond},
	})
	// Only the first endpoint hangs: /slow waits on hung.hold, and good's
	// hold is closed.
	close(good.hold)
	start := time.Now()
	code, body, err := get(t, p.Client(), "http://upstream/slow")
	if err != nil || code != 200 || body != good.url {
		t.Fatalf("got %d %q %v", code, body, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	if st := statusOf(p, hung.url); st.Failures != 1 || st.InFlight != 0 {
		t.Fatalf("hung endpoint: %+v", st)
	}

	// Not retried when it is not safe: the error says what happened.
	req, _ := http.NewRequest(http.MethodPost, "http://upstream/slow", nil)
	_, err = p.RoundTrip(req)
	if !errors.Is(err, ErrAttemptTimeout) {
		t.Fatalf("POST err = %v", err)
	}
}

func TestReverseProxyOverPool(t *testing.T) {
	a := newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url}, Retry: RetryConfig{Attempts: 1}})
	target, _ := url.Parse("http://app")
	proxy := &httputil.ReverseProxy{
		Rewrite:      func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:    p,
		ErrorHandler: ProxyErrorHandler,
	}
	front := httptest.NewServer(proxy)
	defer front.Close()

	if code, body, err := get(t, http.DefaultClient, front.URL+"/x"); err != nil || code != 200 || body != a.url {
		t.Fatalf("proxied: %d %q %v", code, body, err)
	}
	problem := func(want int) {
		t.Helper()
		resp, err := http.Get(front.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var pr tier.Problem
		if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil || resp.StatusCode != want || pr.Status != want ||
			resp.Header.Get("Content-Type") != tier.ContentTypeProblem {
			t.Fatalf("got %d %+v %v, want a %d problem", resp.StatusCode, pr, err, want)
		}
	}
	a.kill()
	problem(http.StatusBadGateway)
	if err := p.Drain(context.Background(), a.url); err != nil {
		t.Fatal(err)
	}
	problem(http.StatusServiceUnavailable)
	http.DefaultClient.CloseIdleConnections()
}
