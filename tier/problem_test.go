package tier_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

func TestWriteProblem(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("ETag", `"stale"`)
	p := tier.NewProblem(503, "no app instance is healthy")
	p.RetryAfter = 1500 * time.Millisecond
	tier.WriteProblem(rec, p)
	if rec.Code != 503 || rec.Header().Get("Content-Type") != tier.ContentTypeProblem {
		t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if got := rec.Header().Get("Retry-After"); got != "2" {
		t.Fatalf("Retry-After = %q, want 2 (rounded up)", got)
	}
	if rec.Header().Get("ETag") != "" {
		t.Fatal("an error response kept the ETag of the resource")
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["status"] != 503.0 || body["title"] != "Service Unavailable" || body["detail"] != "no app instance is healthy" {
		t.Fatalf("body = %v", body)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, time.Minute: 60} {
		if got := tier.RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%s) = %d, want %d", d, got, want)
		}
	}
}
