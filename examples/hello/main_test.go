package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHelloServesPageAndAPI starts the service over a real socket, calls its
// page and its endpoint, then stops it and checks it shut down cleanly.
func TestHelloServesPageAndAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-listen", "127.0.0.1:0"}, io.Discard, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("service ended before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("service not ready within 30s")
	}

	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "<h1>hello, threetier</h1>") {
		t.Fatalf("page: %d %q", resp.StatusCode, page)
	}

	resp, err = http.Get("http://" + addr + "/api/hello")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || body["message"] != "hello, threetier" {
		t.Fatalf("api: %d %v %v", resp.StatusCode, body, err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestHelloRejectsBadFlags(t *testing.T) {
	var stderr strings.Builder
	err := run(context.Background(), []string{"-listen"}, &stderr, nil)
	if err == nil || !strings.Contains(stderr.String(), "flag needs an argument: -listen") {
		t.Fatalf("err %v, stderr %q", err, stderr.String())
	}
}
