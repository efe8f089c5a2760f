package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/syncbuf"
)

// A role traces only when the OTEL_* variables ask: then the request's
// log lines carry the trace it came with; without them, nothing changes.
// With no collector here, the spans go to a port nobody listens on.
func TestShopTracesWhenOTELAsks(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name   string
		env    []string
		traced bool
	}{
		{"off", nil, false},
		{"on", []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:1/v1/traces", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=100"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_TRACES_EXPORTER", "") // the machine's own setting is not the test's
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &syncbuf.Buffer{}
			ready, done := make(chan listening, 1), make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"-role", "app", "-listen", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "shop.db"), "-drain-delay", "0"}, log, ready)
			}()
			var l listening
			select {
			case l = <-ready:
			case err := <-done:
				t.Fatal(err)
			case <-time.After(30 * time.Second):
				t.Fatal("not ready within 30s")
			}
			c := &http.Client{Timeout: 10 * time.Second}
			a := do(t, c, "GET", "http://"+l.Apps[0]+"/api/products", "", "Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
			c.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if a.status != http.StatusOK {
				t.Fatalf("%d %s", a.status, a.body)
			}
			if got := strings.Contains(log.String(), traceID); got != tc.traced {
				t.Fatalf("trace ID in the log: %v, want %v:\n%s", got, tc.traced, log)
			}
		})
	}
}

// TestShopRejectsABadSampler runs the command: an OTEL_TRACES_SAMPLER it
// does not know is one line naming the variable, and exit status 2.
func TestShopRejectsABadSampler(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-role", "app", "-listen", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "shop.db"))
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "OTEL_TRACES_EXPORTER=otlp", "OTEL_TRACES_SAMPLER=sometimes")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2; stderr: %s", err, &stderr)
	}
	want := `shop: OTEL_TRACES_SAMPLER="sometimes": unknown sampler (allowed: always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio)` + "\n"
	if stderr.String() != want {
		t.Fatalf("stderr:\n%s\nwant:\n%s", &stderr, want)
	}
}
