// Package accept reads a request's Accept header (RFC 9110, section
// 12.5.1) for the one choice the tiers make from it: whether an error is
// answered as an HTML page, for a person in a browser, or as problem+json,
// for a program.
package accept

import (
	"strconv"
	"strings"
)

// PrefersHTML reports whether a client that sent accept (the Accept
// header's values joined by commas) would rather have text/html than
// application/problem+json: text/html weighs more than JSON, by the q of
// the most specific range that names each. A tie, an empty header and "*/*"
// keep JSON, so that API clients, curl and scripts get what they parse; a
// browser's navigation ("text/html,...,*/*;q=0.8") gets HTML. A malformed
// range is skipped, never an error.
func PrefersHTML(accept string) bool {
	var html, json weight
	for len(accept) > 0 {
		var item string
		item, accept, _ = strings.Cut(accept, ",")
		typ, sub, q, ok := mediaRange(item)
		if !ok {
			continue
		}
		switch {
		case typ == "*" && sub == "*":
			html.offer(1, q)
			json.offer(1, q)
		case strings.EqualFold(typ, "text"):
			switch {
			case sub == "*":
				html.offer(2, q)
			case strings.EqualFold(sub, "html"):
				html.offer(3, q)
			}
		case strings.EqualFold(typ, "application"):
			switch {
			case sub == "*":
				json.offer(2, q)
			case strings.EqualFold(sub, "problem+json"), strings.EqualFold(sub, "json"):
				json.offer(3, q)
			}
		}
	}
	return html.q > 0 && html.q > json.q
}

// weight is the q of the most specific range seen for a type: 3 for the
// type itself, 2 for type/*, 1 for */*. Of two ranges equally specific,
// the higher q counts.
type weight struct {
	specificity int
	q           float64
}

func (w *weight) offer(specificity int, q float64) {
	switch {
	case specificity > w.specificity:
		w.specificity, w.q = specificity, q
	case specificity == w.specificity && q > w.q:
		w.q = q
	}
}

// mediaRange reads one element of Accept: type "/" subtype, parameters,
// and the weight "q=" (1 without one). ok is false for an element that is
// not a media range, or whose q is not a number from 0 to 1.
func mediaRange(item string) (typ, sub string, q float64, ok bool) {
	mt, params, _ := strings.Cut(item, ";")
	typ, sub, found := strings.Cut(strings.TrimSpace(mt), "/")
	if !found || !token(typ) || !token(sub) || typ == "*" && sub != "*" {
		return "", "", 0, false
	}
	q = 1
	for len(params) > 0 {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return "", "", 0, false
		}
		q = f
		break // what follows q are extension parameters
	}
	return typ, sub, q, true
}

// token reports whether s is a non-empty RFC 9110 token.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
