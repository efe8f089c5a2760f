package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/tier"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newTestLogger(t testing.TB) (*slog.Logger, *syncbuf.Buffer) {
	t.Helper()
	buf := &syncbuf.Buffer{}
	log, err := tier.NewLogger(tier.LogConfig{Level: "debug", Format: "json"}, buf)
	if err != nil {
		t.Fatal(err)
	}
	return log, buf
}

// startServer starts s on a free loopback port and stops it when the test
// ends; it returns the base URL.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return "http://" + s.Addr()
}

// newTestServer builds a server on 127.0.0.1:0.
func newTestServer(t testing.TB, cfg Config, opts ...Option) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testClient returns a client whose idle connections close with the test.
func testClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func fmtDurations(ds []time.Duration) string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", len(ds), percentile(ds, 50), percentile(ds, 99), percentile(ds, 100))
}
