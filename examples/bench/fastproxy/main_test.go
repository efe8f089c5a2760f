package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// startProxy serves a proxy over backends on a free port until the test
// ends, and returns its base URL.
func startProxy(t *testing.T, backends string) string {
	t.Helper()
	p, err := newProxy(backends)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, p) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the proxy did not stop within 10s")
		}
	})
	return "http://" + ln.Addr().String()
}

// get asks url with header X-Forwarded-For set to xff when not empty.
func get(t *testing.T, client *http.Client, url, xff string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestProxiesRoundRobinAndSetsForwardedFor(t *testing.T) {
	backend := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Backend", name)
			w.Header().Set("Seen-Forwarded-For", r.Header.Get("X-Forwarded-For"))
			_, _ = io.WriteString(w, name+" "+r.URL.RequestURI())
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := backend("a"), backend("b")
	url := startProxy(t, a.URL+", "+b.URL)
	client := &http.Client{Timeout: 10 * time.Second}

	var order []string
	for range 4 {
		resp, body := get(t, client, url+"/api/item?x=1", "")
		name := resp.Header.Get("Backend")
		if resp.StatusCode != 200 || body != name+" /api/item?x=1" {
			t.Fatalf("answer %d %q from backend %q", resp.StatusCode, body, name)
		}
		if xff := resp.Header.Get("Seen-Forwarded-For"); xff != "127.0.0.1" {
			t.Fatalf("backend saw X-Forwarded-For %q, want the client's 127.0.0.1", xff)
		}
		order = append(order, name)
	}
	if order[0] == order[1] || order[0] != order[2] || order[1] != order[3] {
		t.Fatalf("backends in turn: %v, want alternating", order)
	}

	resp, _ := get(t, client, url+"/", "203.0.113.9")
	if xff := resp.Header.Get("Seen-Forwarded-For"); xff != "203.0.113.9, 127.0.0.1" {
		t.Fatalf("backend saw X-Forwarded-For %q, want the client's own kept and 127.0.0.1 appended", xff)
	}
}

func TestAnswers502WhenTheBackendIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	resp, _ := get(t, &http.Client{Timeout: 10 * time.Second}, startProxy(t, down)+"/", "")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
}

func TestRejectsBackendsItCannotReach(t *testing.T) {
	for _, list := range []string{"", " , ", "https://127.0.0.1:1", "127.0.0.1:1", "http://127.0.0.1:1/base"} {
		if _, err := newProxy(list); err == nil {
			t.Errorf("newProxy(%q) accepted", list)
		}
	}
}
