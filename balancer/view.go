package balancer

import (
	"context"
	"net/http"
)

// requestView is what the pool's rules read of a request (the hash
// policy's key, idempotency, the caller's context), whichever engine
// carries it: an *http.Request through stdRequest, a fasthttp request
// through fastRequest. Both are pointer conversions, so handing a request
// to the pool costs no allocation.
type requestView interface {
	context() context.Context
	method() string
	// header returns the first value of the header with canonical name.
	header(name string) (string, bool)
	// cookie returns the value of the named cookie.
	cookie(name string) (string, bool)
	remoteAddr() string
	path() string
}

// stdRequest is an *http.Request seen by the pool.
type stdRequest http.Request

func (r *stdRequest) context() context.Context { return (*http.Request)(r).Context() }
func (r *stdRequest) method() string           { return r.Method }
func (r *stdRequest) remoteAddr() string       { return r.RemoteAddr }

func (r *stdRequest) header(name string) (string, bool) {
	if v := r.Header[name]; len(v) > 0 {
		return v[0], true
	}
	return "", false
}

func (r *stdRequest) cookie(name string) (string, bool) {
	for _, line := range r.Header["Cookie"] {
		if v, ok := findCookie(line, name); ok {
			return v, true
		}
	}
	return "", false
}

func (r *stdRequest) path() string {
	if r.URL == nil {
		return ""
	}
	return r.URL.Path
}
