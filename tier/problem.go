package tier

import (
	"encoding/json"
	"html"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/threetier/threetier/internal/accept"
)

// ContentTypeProblem is the media type of RFC 9457 problem details.
const ContentTypeProblem = "application/problem+json"

// Problem is an RFC 9457 problem details object: the body of every error
// response a threetier tier sends.
type Problem struct {
	// Type is a URI naming the kind of problem; "about:blank" when empty.
	Type string `json:"type,omitempty"`
	// Title is a short summary, the same for every occurrence of the type.
	Title string `json:"title"`
	// Status repeats the HTTP status code.
	Status int `json:"status"`
	// Detail explains this occurrence to the client.
	Detail string `json:"detail,omitempty"`
	// Instance identifies this occurrence (the request path, or an ID).
	Instance string `json:"instance,omitempty"`
	// RequestID is the request ID, so that a client can quote it.
	RequestID string `json:"request_id,omitempty"`
	// Errors lists per-field problems (validation failures).
	Errors []FieldProblem `json:"errors,omitempty"`
	// RetryAfter, when positive, is also sent as a Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

// FieldProblem is one invalid field of a rejected request.
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// NewProblem returns a Problem with the standard title of status.
func NewProblem(status int, detail string) *Problem {
	return &Problem{Title: http.StatusText(status), Status: status, Detail: detail}
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// WriteProblem sends p as application/problem+json with its status, and a
// Retry-After header (whole seconds, at least 1) when p.RetryAfter is set.
// ServeProblem, which knows the request, answers a browser with a page.
func WriteProblem(w http.ResponseWriter, p *Problem) { writeProblem(w, p, "") }

// writeProblem sends p's answer to a client whose Accept header is
// acceptHeader.
func writeProblem(w http.ResponseWriter, p *Problem, acceptHeader string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	h.Del("ETag")
	h.Del("Last-Modified")
	body := ProblemAnswer(p, acceptHeader, h.Set)
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// ProblemAnswer sets the headers of p's answer to a client whose Accept
// header is acceptHeader through set, and returns its body: a small HTML page
// when the client prefers text/html (a browser's navigation), else
// problem+json (API clients, scripts, "*/*", no Accept at all). The answer
// is never cached (and so needs no Vary), and carries Retry-After when
// p.RetryAfter is set. Every tier answers its problems through it, on
// either engine; a server without an http.ResponseWriter calls it itself.
func ProblemAnswer(p *Problem, acceptHeader string, set func(name, value string)) []byte {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		set("Retry-After", strconv.FormatInt(retryAfterSeconds(p.RetryAfter), 10))
	}
	if accept.PrefersHTML(acceptHeader) {
		set("Content-Type", "text/html; charset=utf-8")
		// The page loads nothing: whatever a detail smuggled past the
		// escaping could not run or fetch either.
		set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		return problemHTML(p)
	}
	set("Content-Type", ContentTypeProblem)
	return ProblemJSON(p)
}

// ProblemJSON returns p as problem+json, a JSON object and a newline; a
// missing Title becomes the status's standard text.
func ProblemJSON(p *Problem) []byte {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	b, err := json.Marshal(p)
	if err != nil { // no field of a Problem fails to encode
		b = []byte(`{"title":"Internal Server Error","status":500}`)
	}
	return append(b, '\n')
}

// problemHTML is p as a page a person reads: the status and title, the
// detail, the invalid fields, and the path and request ID to quote. Every
// field is escaped.
func problemHTML(p *Problem) []byte {
	var b strings.Builder
	esc := html.EscapeString
	heading := strconv.Itoa(p.Status) + " " + esc(p.Title)
	b.WriteString("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" +
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>")
	b.WriteString(heading)
	b.WriteString("</title>\n<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}" +
		"small{color:#666}code{font-size:.9em}</style></head>\n<body>\n<h1>")
	b.WriteString(heading)
	b.WriteString("</h1>\n")
	if p.Detail != "" {
		b.WriteString("<p>" + esc(p.Detail) + "</p>\n")
	}
	if len(p.Errors) > 0 {
		b.WriteString("<ul>\n")
		for _, f := range p.Errors {
			b.WriteString("<li><code>" + esc(f.Field) + "</code>: " + esc(f.Detail) + "</li>\n")
		}
		b.WriteString("</ul>\n")
	}
	if p.Instance != "" || p.RequestID != "" {
		b.WriteString("<p><small>")
		if p.Instance != "" {
			b.WriteString(esc(p.Instance))
		}
		if p.RequestID != "" {
			if p.Instance != "" {
				b.WriteString(" &middot; ")
			}
			b.WriteString("request " + esc(p.RequestID))
		}
		b.WriteString("</small></p>\n")
	}
	b.WriteString("</body></html>\n")
	return []byte(b.String())
}

// retryAfterSeconds rounds d up to whole seconds, at least 1, as the
// Retry-After header wants.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// ServeProblem sends p as the answer to r: Instance, when empty, becomes
// r's path as the client sent it (URL.EscapedPath, not URL.Path: RFC 9457
// makes Instance a URI reference, and a decoded path may hold spaces or a
// "%2F" turned into a slash), and RequestID, when empty, the ID r's
// context carries. The answer is a page for a client that prefers
// text/html, else problem+json (see ProblemAnswer). Every tier writes its
// problems through it.
func ServeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.EscapedPath()
	}
	if p.RequestID == "" {
		p.RequestID = RequestID(r.Context())
	}
	writeProblem(w, p, strings.Join(r.Header.Values("Accept"), ","))
}
