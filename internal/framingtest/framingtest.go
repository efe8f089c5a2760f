// Package framingtest holds the request-smuggling vectors every HTTP/1.1
// listener of the framework is tried with, and the checks made of the
// answers: one table, run against each engine and each tier that forwards.
package framingtest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Smuggled is the path of the request each vector hides after its bad
// framing. No upstream may ever see it.
const Smuggled = "/api/SMUGGLED2"

const smuggled = "GET " + Smuggled + " HTTP/1.1\r\nHost: a\r\n\r\n"

// A Vector is raw bytes a client sends on a new connection, and the status
// its one answer must have; the connection must close after it.
type Vector struct {
	Name    string
	Request string
	Status  int
}

// Raw is what the client sends: the vector, then the request it smuggles.
func (v Vector) Raw() string { return v.Request + smuggled }

const (
	post    = "POST /api/x HTTP/1.1\r\nHost: a\r\n"
	chunked = post + "Transfer-Encoding: chunked\r\n\r\n"
)

// Vectors are the framing errors of RFC 9112 that let two parsers disagree
// on where a request ends, each followed by a request it would smuggle.
var Vectors = []Vector{
	// A broken chunked body.
	{"chunk size overflows 64 bits", chunked + "10000000000000000\r\nAAAA\r\n0\r\n\r\n", 400},
	{"chunk size in 0x form", chunked + "0x5\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk size with a sign", chunked + "+5\r\nhello\r\n0\r\n\r\n", 400},
	{"negative chunk size", chunked + "-5\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk size split by a space", chunked + "5 5\r\nhello\r\n0\r\n\r\n", 400},
	{"bare LF after chunk size", chunked + "5\nhello\r\n0\r\n\r\n", 400},
	{"bare LF in chunk extension", chunked + "5;a=b\nhello\r\n0\r\n\r\n", 400},
	{"bare CR in chunk line", chunked + "5\r\r\nhello\r\n0\r\n\r\n", 400},
	{"CR inside chunk extension", chunked + "5;a\rb\r\nhello\r\n0\r\n\r\n", 400},
	{"chunk data without CRLF", chunked + "5\r\nhelloX0\r\n\r\n", 400},
	{"chunk data longer than its size", chunked + "3\r\nhello\r\n0\r\n\r\n", 400},
	{"last chunk without final CRLF", chunked + "5\r\nhello\r\n0\r\n", 400},
	{"last chunk ended by bare LFs", chunked + "0\n\n", 400},
	{"bare LF after chunk data", chunked + "5\r\nhello\n0\r\n\r\n", 400},
	{"obs-fold in a trailer", chunked + "0\r\nX: a\r\n b\r\n\r\n", 400},
	// Content-Length and Transfer-Encoding together, however disguised.
	{"CL.TE", post + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"TE.CL", post + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", 400},
	{"TE with a tab", post + "Transfer-Encoding:\tchunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
	{"TE in upper case", post + "Transfer-Encoding: CHUNKED\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
	{"TE folded", post + "Transfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
	{"TE behind a bare LF", post + "X: y\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
	// Codings other than a lone chunked.
	{"chunked, identity", post + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400},
	{"xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
	{"gzip, chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
	{"duplicate TE", post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
	{"HTTP/1.0 with TE", "POST /api/x HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
	// Content-Length that is not one plain number.
	{"duplicate CL", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400},
	{"conflicting CL", post + "Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello", 400},
	{"negative CL", post + "Content-Length: -1\r\n\r\n", 400},
	{"hex CL", post + "Content-Length: 0x5\r\n\r\nhello", 400},
	{"signed CL", post + "Content-Length: +5\r\n\r\nhello", 400},
	{"CL list", post + "Content-Length: 5, 5\r\n\r\nhello", 400},
	// Bytes that a header line may not hold.
	{"NUL in a value", post + "X: a\x00b\r\nContent-Length: 0\r\n\r\n", 400},
	{"CR in a value", post + "X: a\rb\r\nContent-Length: 0\r\n\r\n", 400},
	{"obs-fold", post + "X: a\r\n b\r\nContent-Length: 0\r\n\r\n", 400},
	{"space before colon", post + "Content-Length : 5\r\n\r\nhello", 400},
	{"bare LF ends the head", post + "Content-Length: 0\n\n", 400},
	// Targets and methods a front door does not forward.
	{"absolute target, other host", "GET http://b/api/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
	{"two Host headers", "GET /api/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
}

// An Upstream is an HTTP server that records the path of every request it
// receives, reading each body to its end.
type Upstream struct {
	URL string

	mu    sync.Mutex
	paths []string
}

// NewUpstream starts an Upstream on loopback, stopped when t ends.
func NewUpstream(t testing.TB) *Upstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &Upstream{URL: "http://" + ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.paths = append(u.paths, r.URL.Path)
		u.mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "upstream saw "+r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return u
}

// Paths returns the paths received so far.
func (u *Upstream) Paths() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.paths...)
}

// Dial opens a connection to the listener under test: plain TCP, or TLS.
type Dial func() (net.Conn, error)

// TCP dials addr in plain TCP.
func TCP(addr string) Dial {
	return func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
}

// Answers sends raw on a new connection from dial, then reads what comes
// back until the server closes the connection or the deadline passes;
// closed reports which.
func Answers(t testing.TB, dial Dial, raw string, deadline time.Duration) (answers []*http.Response, bodies []string, closed bool) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			// The end of the stream, not a timeout, is a closed connection.
			ne, ok := err.(net.Error)
			return answers, bodies, !(ok && ne.Timeout())
		}
		b, err := io.ReadAll(resp.Body)
		answers, bodies = append(answers, resp), append(bodies, string(b))
		if err != nil {
			return answers, bodies, false
		}
	}
}

// A Recorder tells the paths of the requests a handler received: an
// Upstream's, or those of the handler behind the listener under test.
type Recorder interface{ Paths() []string }

// Run sends every vector, each followed by a smuggled request, on its own
// connection from dial, to the HTTP/1.1 listener of a server whose handler (or
// upstream, when it forwards) is up. Each must get one answer with the
// vector's status, as problem+json, and the connection closed; up must
// never see the smuggled request. A well-framed chunked request and a
// pipelined one after it must both go through on one connection that
// stays open.
func Run(t *testing.T, dial Dial, up Recorder) {
	t.Run("well framed", func(t *testing.T) {
		raw := chunked + "5\r\nhello\r\n0\r\n\r\n" + "GET /api/after HTTP/1.1\r\nHost: a\r\n\r\n"
		answers, _, closed := Answers(t, dial, raw, time.Second)
		if len(answers) != 2 || answers[0].StatusCode != 200 || answers[1].StatusCode != 200 {
			t.Fatalf("answers %v, want two 200s", statuses(answers))
		}
		if closed {
			t.Fatal("the connection closed after well-framed requests")
		}
	})
	for _, v := range Vectors {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			answers, bodies, closed := Answers(t, dial, v.Raw(), 10*time.Second)
			if len(answers) != 1 {
				t.Fatalf("answers %v (%q), want one %d", statuses(answers), bodies, v.Status)
			}
			if got := answers[0].StatusCode; got != v.Status {
				t.Errorf("status %d (%s), want %d", got, bodies[0], v.Status)
			}
			if ct := answers[0].Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			if !bytes.Contains([]byte(bodies[0]), []byte(`"status":`)) {
				t.Errorf("body %q is not a problem", bodies[0])
			}
			if !closed {
				t.Error("the connection stayed open after a framing error")
			}
		})
	}
	t.Cleanup(func() {
		for _, p := range up.Paths() {
			if strings.Contains(p, "SMUGGLED") {
				t.Errorf("the upstream received %s, which no client sent as a request", p)
			}
		}
	})
}

func statuses(rs []*http.Response) []int {
	s := make([]int, len(rs))
	for i, r := range rs {
		s[i] = r.StatusCode
	}
	return s
}
