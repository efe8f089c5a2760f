package tier

import (
	"bytes"
	"net/http"
	"strconv"
)

// FramingError is a request whose HTTP/1.1 framing cannot be trusted: where
// it ends, and so where the next request on the connection begins, is not
// certain (RFC 9112 §6, §11.2). The connection it came on is closed after the
// answer, and nothing sent after it is read as a request. A handler meets it
// as the error of a request body read; a bad request head never reaches a
// handler.
type FramingError struct {
	Status int    // 400, or 405, 501, 505 for the request line and codings
	Reason string // what was wrong, in words a client can be shown
}

func (e *FramingError) Error() string { return "bad request framing: " + e.Reason }

// framer follows the framing of a stream of HTTP/1.1 requests byte by byte,
// as HAProxy and nginx would judge it: it finds where each head and body
// ends without keeping them, and rejects what would let two parsers
// disagree on those ends (a smuggling vector): Content-Length beside
// Transfer-Encoding, duplicate or malformed lengths, codings other than a
// lone chunked, obs-fold, bare CR or LF, control bytes in values, malformed
// chunks. It is the one implementation of these rules; each HTTP engine
// gets an adapter that feeds it the bytes it reads.
type framer struct {
	st   framerState
	left uint64 // bytes left of a Content-Length body or of a chunk's data
	line int    // bytes of the current chunk or trailer line, to bound it
	n    int    // digits of a chunk size, or bytes of the request line's version

	// What the head being read said, checked when it ends.
	method    []byte
	authority []byte // of an absolute-form target, lower case
	target    byte   // the target's form: '/', '*', 'a' (absolute) or 0 (unknown yet)
	minor     byte   // HTTP/1.x
	name      []byte // the header being read, lower case, when it is one of those kept
	nameLong  bool   // the header name is longer than any kept one
	value     []byte // its value, when kept
	keep      bool   // the current header's value is kept
	contentLn int64  // -1 when absent
	te        []byte // the Transfer-Encoding value, lower case; nil when absent
	host      []byte
	hasHost   bool
	connUpg   bool // Connection names upgrade
	upgrade   bool // an Upgrade header is present
	expect    bool // an Expect header is present

	// switching reports that the message that just ended asked to switch
	// protocols: what follows may not be HTTP/1.1.
	switching bool
	// last is what the head that ended last said of its body and of what
	// follows it; it stays until the next head ends.
	last headSummary
}

// headSummary is what an engine that serves only plain requests needs to
// know of a head to leave it to one that serves them all.
type headSummary struct {
	contentLength int64 // -1 when absent
	chunked       bool
	expect        bool // an Expect header, 100-continue or other
	upgrade       bool // it asks to switch protocols
}

type framerState uint8

const (
	fsMethod framerState = iota
	fsTarget
	fsAuthority
	fsTargetRest
	fsVersion
	fsVersionLF
	fsLineStart
	fsName
	fsValue
	fsValueLF
	fsHeadLF
	fsBody
	fsChunkSize
	fsChunkBWS
	fsChunkExt
	fsChunkSizeLF
	fsChunkData
	fsChunkDataCR
	fsChunkDataLF
	fsTrailerStart
	fsTrailerName
	fsTrailerValue
	fsTrailerLF
	fsTrailerEndLF
)

// framerEvent is what stopped a scan: a set of these bits, or none when p
// was taken whole.
type framerEvent uint8

const (
	evNone  framerEvent = 0
	evHead  framerEvent = 1 << iota // a request head ended
	evEnd                           // a request ended (head and body; with evHead when it has no body)
	evError                         // the framing is bad: see the error
)

// Bounds of what the framer keeps or allows.
const (
	maxKeptValue  = 4 << 10 // a Host, Content-Length, Transfer-Encoding, Connection or Upgrade value
	maxAuthority  = 1 << 10
	maxMethod     = 32
	maxChunkLine  = 4 << 10 // as net/http's chunked reader
	maxChunkDigit = 16      // a chunk size fits in 64 bits
)

// The headers whose values the framer reads; any other is only checked.
var keptHeaders = [...]string{"content-length", "transfer-encoding", "host", "connection", "upgrade"}

const versionPrefix = "HTTP/1."

// newFramer returns a framer waiting for a connection's first request.
func newFramer() *framer {
	f := &framer{}
	f.startHead()
	return f
}

// inBody reports whether the framer is past a request's head, in its body.
func (f *framer) inBody() bool { return f.st >= fsBody }

func (f *framer) fail(status int, reason string) *FramingError {
	return &FramingError{Status: status, Reason: reason}
}

func (f *framer) bad(reason string) *FramingError {
	return f.fail(http.StatusBadRequest, reason)
}

// startHead resets what the framer knows of a request, for the next one.
func (f *framer) startHead() {
	f.st = fsMethod
	f.method, f.authority, f.te, f.host = f.method[:0], f.authority[:0], nil, f.host[:0]
	f.target, f.minor, f.hasHost, f.connUpg, f.upgrade, f.expect = 0, 0, false, false, false, false
	f.contentLn = -1
	f.n = 0
}

// scan takes the next bytes of the stream. It returns how many it took and
// why it stopped before the end of p, if it did: at the end of a head, of a
// request, or at the first byte that breaks the framing (then it took none
// of the bytes from that one on).
func (f *framer) scan(p []byte) (int, framerEvent, *FramingError) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch f.st {
		case fsMethod:
			switch {
			case c == ' ' && len(f.method) > 0:
				if string(f.method) == http.MethodConnect {
					return i, evError, f.fail(http.StatusMethodNotAllowed, "CONNECT is not served here")
				}
				f.st = fsTarget
			case isTokenByte(c):
				if len(f.method) == maxMethod {
					return i, evError, f.fail(http.StatusNotImplemented, "the method is too long to be one this server knows")
				}
				f.method = append(f.method, c)
			default:
				return i, evError, f.bad("malformed request line")
			}
		case fsTarget:
			switch {
			case c == '/':
				f.target, f.st = '/', fsTargetRest
			case c == '*':
				f.target, f.st = '*', fsTargetRest
			case isTargetByte(c):
				f.target, f.st = 'a', fsAuthority
				f.authority = append(f.authority, lower(c))
			default:
				return i, evError, f.bad("malformed request target")
			}
		case fsAuthority:
			// Scheme, "://" and authority, up to the path: split at the end.
			switch {
			case c == ' ':
				if err := f.endAuthority(); err != nil {
					return i, evError, err
				}
				f.st = fsVersion
			case c == '/' && !bytes.HasSuffix(f.authority, []byte(":")) && !bytes.HasSuffix(f.authority, []byte(":/")),
				c == '?' && bytes.Contains(f.authority, []byte("://")):
				if err := f.endAuthority(); err != nil {
					return i, evError, err
				}
				f.st = fsTargetRest
			case isTargetByte(c):
				if len(f.authority) == maxAuthority {
					return i, evError, f.bad("the request target's host is too long")
				}
				f.authority = append(f.authority, lower(c))
			default:
				return i, evError, f.bad("malformed request target")
			}
		case fsTargetRest:
			if f.target != '*' {
				j := i
				for j < len(p) && isTargetByte(p[j]) {
					j++
				}
				if j == len(p) {
					return len(p), evNone, nil
				}
				i, c = j, p[j]
			}
			switch {
			case c == ' ':
				f.st = fsVersion
			case isTargetByte(c):
				if f.target == '*' {
					return i, evError, f.bad("malformed request target")
				}
			default:
				return i, evError, f.bad("malformed request target")
			}
		case fsVersion:
			if f.n < len(versionPrefix) {
				if c != versionPrefix[f.n] {
					if f.n == 5 && c >= '2' && c <= '9' {
						if string(f.method) == "PRI" {
							return i, evError, f.bad("an HTTP/2 connection preface on an HTTP/1.1 connection")
						}
						return i, evError, f.fail(http.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served on this connection")
					}
					return i, evError, f.bad("malformed HTTP version")
				}
				f.n++
				continue
			}
			if c != '0' && c != '1' {
				return i, evError, f.fail(http.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are served on this connection")
			}
			f.minor, f.st = c, fsVersionLF
			f.n = 0
		case fsVersionLF:
			// CR, then LF.
			if f.n == 0 && c == '\r' {
				f.n = 1
				continue
			}
			if f.n == 1 && c == '\n' {
				f.n, f.st = 0, fsLineStart
				continue
			}
			return i, evError, f.bad("malformed request line: it must end in CRLF")
		case fsLineStart:
			switch {
			case c == '\r':
				f.st = fsHeadLF
			case c == ' ' || c == '\t':
				return i, evError, f.bad("obsolete line folding in a header")
			case isTokenByte(c):
				f.name, f.nameLong, f.keep = append(f.name[:0], lower(c)), false, false
				f.st = fsName
			default:
				return i, evError, f.bad("malformed header line")
			}
		case fsName:
			switch {
			case c == ':':
				f.keep = !f.nameLong && isKeptHeader(f.name)
				if !f.nameLong && string(f.name) == "expect" {
					f.expect = true // only its presence matters, not its value
				}
				f.value = f.value[:0]
				f.st = fsValue
			case isTokenByte(c):
				if len(f.name) < len("transfer-encoding") {
					f.name = append(f.name, lower(c))
				} else {
					f.nameLong = true
				}
			default:
				return i, evError, f.bad("malformed header name")
			}
		case fsValue:
			if !f.keep {
				// Most of a head is values no rule reads: skip them fast.
				j := i
				for j < len(p) && isFieldByte(p[j]) {
					j++
				}
				if j == len(p) {
					return len(p), evNone, nil
				}
				i, c = j, p[j]
			}
			switch {
			case c == '\r':
				f.st = fsValueLF
			case isFieldByte(c):
				if f.keep {
					if len(f.value) == maxKeptValue {
						return i, evError, f.bad("the " + string(f.name) + " header is too long")
					}
					f.value = append(f.value, c)
				}
			default:
				return i, evError, f.bad("a control character in a header value")
			}
		case fsValueLF:
			if c != '\n' {
				return i, evError, f.bad("a header line must end in CRLF")
			}
			if f.keep {
				if err := f.keepHeader(); err != nil {
					return i, evError, err
				}
			}
			f.st = fsLineStart
		case fsHeadLF:
			if c != '\n' {
				return i, evError, f.bad("the request head must end in CRLF")
			}
			if err := f.endHead(); err != nil {
				return i, evError, err
			}
			if f.st == fsBody && f.left == 0 {
				return i + 1, evHead | f.endMessage(), nil
			}
			return i + 1, evHead, nil
		case fsBody:
			n := uint64(len(p) - i)
			if n > f.left {
				n = f.left
			}
			f.left -= n
			i += int(n) - 1
			if f.left == 0 {
				return i + 1, f.endMessage(), nil
			}
		case fsChunkSize:
			switch d := unhex(c); {
			case d >= 0:
				if f.n == maxChunkDigit {
					return i, evError, f.bad("a chunk size over 64 bits")
				}
				f.left = f.left<<4 | uint64(d)
				f.n++
			case f.n == 0:
				return i, evError, f.bad("malformed chunk size")
			case c == ';':
				f.st = fsChunkExt
			case c == ' ' || c == '\t':
				f.st = fsChunkBWS
			case c == '\r':
				f.st = fsChunkSizeLF
			default:
				return i, evError, f.bad("malformed chunk size")
			}
		case fsChunkBWS:
			switch c {
			case ' ', '\t':
			case ';':
				f.st = fsChunkExt
			case '\r':
				f.st = fsChunkSizeLF
			default:
				return i, evError, f.bad("malformed chunk size")
			}
		case fsChunkExt:
			switch {
			case c == '\r':
				f.st = fsChunkSizeLF
			case isFieldByte(c):
			default:
				return i, evError, f.bad("a control character in a chunk extension")
			}
		case fsChunkSizeLF:
			if c != '\n' {
				return i, evError, f.bad("a chunk size line must end in CRLF")
			}
			f.n, f.line = 0, 0
			if f.left == 0 {
				f.st = fsTrailerStart
			} else {
				f.st = fsChunkData
			}
			continue
		case fsChunkData:
			n := uint64(len(p) - i)
			if n > f.left {
				n = f.left
			}
			f.left -= n
			i += int(n) - 1
			if f.left == 0 {
				f.st = fsChunkDataCR
			}
			continue
		case fsChunkDataCR:
			if c != '\r' {
				return i, evError, f.bad("chunk data must be followed by CRLF")
			}
			f.st = fsChunkDataLF
			continue
		case fsChunkDataLF:
			if c != '\n' {
				return i, evError, f.bad("chunk data must be followed by CRLF")
			}
			f.st, f.line = fsChunkSize, 0
			continue
		case fsTrailerStart:
			switch {
			case c == '\r':
				f.st = fsTrailerEndLF
			case isTokenByte(c):
				f.st = fsTrailerName
			case c == ' ' || c == '\t':
				return i, evError, f.bad("obsolete line folding in a trailer")
			default:
				return i, evError, f.bad("malformed trailer line")
			}
		case fsTrailerName:
			switch {
			case c == ':':
				f.st = fsTrailerValue
			case isTokenByte(c):
			default:
				return i, evError, f.bad("malformed trailer name")
			}
		case fsTrailerValue:
			switch {
			case c == '\r':
				f.st = fsTrailerLF
			case isFieldByte(c):
			default:
				return i, evError, f.bad("a control character in a trailer value")
			}
		case fsTrailerLF:
			if c != '\n' {
				return i, evError, f.bad("a trailer line must end in CRLF")
			}
			f.st, f.line = fsTrailerStart, 0
			continue
		case fsTrailerEndLF:
			if c != '\n' {
				return i, evError, f.bad("the chunked body must end in CRLF")
			}
			return i + 1, f.endMessage(), nil
		}
		// Chunk and trailer lines are bounded, as net/http bounds them.
		if f.st >= fsChunkSize {
			if f.line++; f.line > maxChunkLine {
				return i, evError, f.bad("a chunk or trailer line over 4 KiB")
			}
		}
	}
	return len(p), evNone, nil
}

// endAuthority checks an absolute-form target's scheme and keeps its host.
func (f *framer) endAuthority() *FramingError {
	a := f.authority
	switch {
	case bytes.HasPrefix(a, []byte("http://")):
		a = a[len("http://"):]
	case bytes.HasPrefix(a, []byte("https://")):
		a = a[len("https://"):]
	default:
		return f.bad("malformed request target")
	}
	if i := bytes.IndexByte(a, '@'); i >= 0 {
		return f.bad("credentials in the request target")
	}
	f.authority = append(f.authority[:0], a...)
	return nil
}

// keepHeader records the value of a header the framing depends on.
func (f *framer) keepHeader() *FramingError {
	v := bytes.Trim(f.value, " \t")
	switch string(f.name) {
	case "content-length":
		if f.contentLn >= 0 {
			return f.bad("more than one Content-Length")
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n < 0 || len(v) == 0 || v[0] < '0' || v[0] > '9' {
			return f.bad("malformed Content-Length")
		}
		f.contentLn = n
	case "transfer-encoding":
		if f.te != nil {
			return f.bad("more than one Transfer-Encoding")
		}
		f.te = append(make([]byte, 0, len(v)), bytes.ToLower(v)...)
	case "host":
		if f.hasHost {
			return f.bad("more than one Host")
		}
		f.hasHost = true
		f.host = f.host[:0]
		for _, c := range v {
			f.host = append(f.host, lower(c))
		}
	case "connection":
		for t := range bytes.SplitSeq(v, []byte(",")) {
			if bytes.EqualFold(bytes.Trim(t, " \t"), []byte("upgrade")) {
				f.connUpg = true
			}
		}
	case "upgrade":
		f.upgrade = true
	}
	return nil
}

// endHead checks what the whole head says, readies the body and notes
// the head's summary in last.
func (f *framer) endHead() *FramingError {
	if err := f.checkHead(); err != nil {
		return err
	}
	f.last = headSummary{contentLength: f.contentLn, chunked: f.te != nil, expect: f.expect, upgrade: f.connUpg && f.upgrade}
	return nil
}

// checkHead checks what the whole head says and readies the body.
func (f *framer) checkHead() *FramingError {
	if f.target == '*' && string(f.method) != http.MethodOptions {
		return f.bad("the request target * is only for OPTIONS")
	}
	if f.minor == '1' && !f.hasHost {
		return f.bad("no Host header")
	}
	if f.target == 'a' && f.hasHost && !bytes.Equal(f.authority, f.host) {
		return f.bad("the request target's host differs from the Host header")
	}
	if f.te != nil {
		if f.minor == '0' {
			return f.bad("Transfer-Encoding in an HTTP/1.0 request")
		}
		if f.contentLn >= 0 {
			return f.bad("both Content-Length and Transfer-Encoding")
		}
		comma := bytes.LastIndexByte(f.te, ',')
		if last := bytes.Trim(f.te[comma+1:], " \t"); string(last) != "chunked" {
			return f.bad("chunked is not the final transfer coding")
		}
		if comma >= 0 {
			return f.fail(http.StatusNotImplemented, "only the chunked transfer coding is supported")
		}
		f.st, f.left, f.n, f.line = fsChunkSize, 0, 0, 0
		return nil
	}
	f.st, f.left = fsBody, uint64(max(f.contentLn, 0))
	return nil
}

// endMessage readies the framer for the next request and says whether the
// one that ended asked to switch protocols.
func (f *framer) endMessage() framerEvent {
	f.switching = f.connUpg && f.upgrade
	f.startHead()
	return evEnd
}

func isKeptHeader(name []byte) bool {
	for _, k := range keptHeaders {
		if string(name) == k {
			return true
		}
	}
	return false
}

// isTokenByte reports whether c may appear in an RFC 9110 token.
func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c < 0x80 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0
}

// isFieldByte reports whether c may appear in a field value or a chunk
// extension: no control byte but HTAB.
func isFieldByte(c byte) bool { return c == '\t' || c >= ' ' && c != 0x7f }

// isTargetByte reports whether c may appear in a request target: no
// control byte, space or DEL.
func isTargetByte(c byte) bool { return c > ' ' && c != 0x7f }

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// Problem is the answer a framing error gets.
func (e *FramingError) Problem() *Problem { return NewProblem(e.Status, e.Reason) }
