package tier_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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

// browserAccept is what a browser sends when it navigates.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"

func TestServeProblemAnswersABrowserWithAnEscapedPage(t *testing.T) {
	r := httptest.NewRequest("GET", "/orders/%3Cx%3E", nil)
	r.Header.Set("Accept", browserAccept)
	rec := httptest.NewRecorder()
	p := tier.NewProblem(422, `the <script>alert("detail")</script> is bad`)
	p.Errors = []tier.FieldProblem{{Field: `items[0].<i>`, Detail: `"quoted" & <b>bold</b>`}}
	p.RequestID = `id"><img src=x>`
	p.RetryAfter = time.Second
	tier.ServeProblem(rec, r, p)

	if rec.Code != 422 || rec.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("status %d type %q, want 422 text/html", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Retry-After") != "1" || rec.Header().Get("Content-Security-Policy") == "" {
		t.Errorf("headers %v", rec.Header())
	}
	body := rec.Body.String()
	for _, want := range []string{
		"<title>422 Unprocessable Entity</title>",
		"the &lt;script&gt;alert(&#34;detail&#34;)&lt;/script&gt; is bad",
		"<code>items[0].&lt;i&gt;</code>: &#34;quoted&#34; &amp; &lt;b&gt;bold&lt;/b&gt;",
		"/orders/%3Cx%3E",
		"request id&#34;&gt;&lt;img src=x&gt;",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	for _, raw := range []string{"<script", "<img", "<b>", "<i>"} {
		if strings.Contains(body, raw) {
			t.Errorf("the page holds %q unescaped:\n%s", raw, body)
		}
	}
}

func TestServeProblemKeepsJSONForProgramsAndWildcards(t *testing.T) {
	for _, accept := range [][]string{nil, {"*/*"}, {"application/json"}, {"application/problem+json, text/html;q=0.9"}, {"application/json", "text/html"}} {
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header["Accept"] = accept
		rec := httptest.NewRecorder()
		tier.ServeProblem(rec, r, tier.NewProblem(404, "no such thing"))
		var body tier.Problem
		if ct := rec.Header().Get("Content-Type"); ct != tier.ContentTypeProblem || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Status != 404 {
			t.Errorf("Accept %q: %s %q", accept, ct, rec.Body.String())
		}
	}
}
