package tier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

func TestLoggerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log, err := tier.NewLogger(tier.LogConfig{Level: "debug", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := httpx.WithRequestID(context.Background(), "req-42")
	log.With("tier", "app").DebugContext(ctx, "handled")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if rec["request_id"] != "req-42" || rec["tier"] != "app" || rec["msg"] != "handled" {
		t.Fatalf("record = %v", rec)
	}

	// A record that carries its request ID already gets no second one.
	buf.Reset()
	log.InfoContext(ctx, "access", "request_id", "req-42")
	if n := bytes.Count(buf.Bytes(), []byte(`"request_id"`)); n != 1 {
		t.Fatalf("%d request IDs in %s", n, buf.String())
	}
}

func TestLoggerLevelFilters(t *testing.T) {
	var buf bytes.Buffer
	log, err := tier.NewLogger(tier.LogConfig{Level: "warn"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("quiet")
	if buf.Len() != 0 {
		t.Fatalf("info logged at warn level: %q", buf.String())
	}
	log.Warn("loud")
	if !bytes.Contains(buf.Bytes(), []byte("msg=loud")) {
		t.Fatalf("text format expected, got %q", buf.String())
	}
	if _, err := tier.NewLogger(tier.LogConfig{Level: "verbose"}, &buf); err == nil {
		t.Fatal("unknown level accepted")
	}
}

func TestNewRequestIDIsUnique(t *testing.T) {
	a, b := tier.NewRequestID(), tier.NewRequestID()
	if len(a) != 32 || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
}
