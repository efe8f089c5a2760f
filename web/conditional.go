package web

import (
	"net/http"
	"strings"
	"time"
)

// precondition evaluates the conditional request headers in the order RFC
// 9110 §13.2.2 gives and returns 0 (go on), 304 or 412.
func precondition[X exchange](x X, etag string, modTime time.Time) int {
	m := x.method()
	getOrHead := m == http.MethodGet || m == http.MethodHead
	if im := x.headerList("If-Match"); im != "" {
		if !etagListMatch(im, etag, true) {
			return http.StatusPreconditionFailed
		}
	} else if ius := x.header("If-Unmodified-Since"); ius != "" && !modTime.IsZero() {
		if t, err := http.ParseTime(ius); err == nil && modTime.Truncate(time.Second).After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if inm := x.headerList("If-None-Match"); inm != "" {
		if etagListMatch(inm, etag, false) {
			if getOrHead {
				return http.StatusNotModified
			}
			return http.StatusPreconditionFailed
		}
	} else if ims := x.header("If-Modified-Since"); ims != "" && getOrHead && !modTime.IsZero() {
		if t, err := http.ParseTime(ims); err == nil && !modTime.Truncate(time.Second).After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// headerList returns a list-valued header as one comma-separated list,
// however many lines it came in.
func headerList(h http.Header, canonicalKey string) string {
	switch v := h[canonicalKey]; len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	default:
		return strings.Join(v, ",")
	}
}

// ifRangeAllows reports whether a Range request with If-Range ir may be
// honoured: true when ir is empty, or when it names the current
// representation by a strong ETag or by exactly its Last-Modified date.
func ifRangeAllows(ir, etag string, modTime time.Time) bool {
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		tag, rest, ok := scanETag(ir)
		return ok && strings.TrimSpace(rest) == "" && !strings.HasPrefix(tag, "W/") && tag == etag
	}
	if modTime.IsZero() {
		return false
	}
	t, err := http.ParseTime(ir)
	return err == nil && t.Equal(modTime.Truncate(time.Second))
}

// etagListMatch reports whether list ("*" or comma-separated entity tags)
// matches etag, comparing strongly (If-Match) or weakly (If-None-Match).
func etagListMatch(list, etag string, strong bool) bool {
	list = strings.TrimSpace(list)
	if list == "*" {
		return true
	}
	for {
		list = strings.TrimLeft(list, " \t,")
		if list == "" {
			return false
		}
		tag, rest, ok := scanETag(list)
		if !ok {
			return false
		}
		if strong {
			if !strings.HasPrefix(tag, "W/") && tag == etag {
				return true
			}
		} else if strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
		list = rest
	}
}

// scanETag reads one entity tag (W/"x" or "x") from the front of s.
func scanETag(s string) (tag, rest string, ok bool) {
	start := 0
	if strings.HasPrefix(s, "W/") {
		start = 2
	}
	if len(s) < start+2 || s[start] != '"' {
		return "", "", false
	}
	for i := start + 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return s[:i+1], s[i+1:], true
		case c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80:
		default:
			return "", "", false
		}
	}
	return "", "", false
}
