package tier

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
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
func WriteProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	h.Del("ETag")
	h.Del("Last-Modified")
	ProblemHeader(p, h.Set)
	body := ProblemJSON(p)
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// ProblemHeader sets the headers of p's answer through set: its content
// type, no caching, and Retry-After when p.RetryAfter is set. With
// ProblemJSON it is the answer for a server that has no
// http.ResponseWriter.
func ProblemHeader(p *Problem, set func(name, value string)) {
	set("Content-Type", ContentTypeProblem)
	set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		set("Retry-After", strconv.FormatInt(retryAfterSeconds(p.RetryAfter), 10))
	}
}

// ProblemJSON returns the body of p's answer, a JSON object and a newline;
// a missing Title becomes the status's standard text.
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
// context carries. Every tier writes its problems through it.
func ServeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.EscapedPath()
	}
	if p.RequestID == "" {
		p.RequestID = RequestID(r.Context())
	}
	WriteProblem(w, p)
}
