package web

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// cleanPath turns a request path (already percent-decoded once by net/http)
// into a name for fs.FS, or rejects it. It never decodes again, so "%2e%2e"
// in the URL is ".." here (rejected) and "%252e" is the literal name "%2e".
// Non-canonical paths (".", "..", "//") are refused rather than cleaned, so
// that one file has one URL and caches cannot be poisoned by aliases.
//
// The result has no leading slash ("" is the root) and dir reports a
// trailing slash.
func cleanPath(p, prefix string) (name string, dir bool, err error) {
	if !strings.HasPrefix(p, prefix) {
		if p+"/" == prefix { // "/static" for "/static/": the root, to be redirected
			return "", false, nil
		}
		return "", false, fmt.Errorf("%w: outside %s", errBadPath, prefix)
	}
	rest := p[len(prefix):]
	if strings.IndexByte(rest, 0) >= 0 {
		return "", false, fmt.Errorf("%w: NUL byte", errBadPath)
	}
	if strings.IndexByte(rest, '\\') >= 0 {
		return "", false, fmt.Errorf("%w: backslash", errBadPath)
	}
	if !utf8.ValidString(rest) {
		return "", false, fmt.Errorf("%w: not UTF-8", errBadPath)
	}
	dir = rest == "" || strings.HasSuffix(rest, "/")
	name = strings.TrimSuffix(rest, "/")
	if name == "" {
		if rest != "" { // "//" right after the prefix
			return "", false, fmt.Errorf("%w: empty path element", errBadPath)
		}
		return "", true, nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		switch elem {
		case "":
			return "", false, fmt.Errorf("%w: empty path element", errBadPath)
		case ".", "..":
			return "", false, fmt.Errorf("%w: dot segment", errBadPath)
		}
	}
	return name, dir, nil
}

// hasEncodedSlash reports a "%2F" (either case) in an escaped path. Files
// refuses such paths: decoded, "/a%2Fb" would be a second URL of /a/b, and
// "/api%2Fx", which a router matching escaped paths does not send to a
// route for "/api/", would reach the files as api/x. nginx decodes it and
// serves the file, or passes it to the location for /api/.
func hasEncodedSlash(rawPath string) bool {
	for i := 0; i+2 < len(rawPath); i++ {
		if rawPath[i] == '%' && rawPath[i+1] == '2' && rawPath[i+2]|0x20 == 'f' {
			return true
		}
	}
	return false
}

// hidden reports whether name has an element starting with "." other than
// the /.well-known/ directory (RFC 8615), which must stay reachable.
func hidden(name string) bool {
	if name == ".well-known" || strings.HasPrefix(name, ".well-known/") {
		name = strings.TrimPrefix(strings.TrimPrefix(name, ".well-known"), "/")
	}
	return name != "" && (name[0] == '.' || strings.Contains(name, "/."))
}
