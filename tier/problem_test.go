package tier_test

import (
	"encoding/json"
	"net/http"
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

// Retry-After is whole seconds, rounded up, at least 1.
func TestProblemRetryAfterIsWholeSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Millisecond: "1", time.Second: "1", 1001 * time.Millisecond: "2", time.Minute: "60"} {
		p := tier.NewProblem(http.StatusServiceUnavailable, "")
		p.RetryAfter = d
		w := httptest.NewRecorder()
		tier.WriteProblem(w, p)
		if got := w.Header().Get("Retry-After"); got != want {
			t.Errorf("RetryAfter %s: Retry-After %q, want %q", d, got, want)
		}
	}
}
