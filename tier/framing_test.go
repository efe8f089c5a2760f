package tier

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/internal/framingtest"
)

// heads runs a framer over raw, in pieces of size n (all at once when n is
// 0), and returns the request lines of the heads it passed and its error.
func heads(raw []byte, n int) (lines []string, err *FramingError) {
	f := newFramer()
	start := 0
	for off := 0; off < len(raw); {
		end := len(raw)
		if n > 0 {
			end = min(off+n, len(raw))
		}
		for off < end {
			k, ev, ferr := f.scan(raw[off:end])
			off += k
			if ferr != nil {
				return lines, ferr
			}
			if ev&evHead != 0 {
				line, _, _ := strings.Cut(string(raw[start:off]), "\r\n")
				lines = append(lines, line)
			}
			if ev&evEnd != 0 {
				start = off
			}
		}
	}
	return lines, nil
}

func TestFramerFollowsRequests(t *testing.T) {
	raw := "GET /a HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=\"v\"\r\nhello\r\n0\r\nTrailer-A: x\r\n\r\n" +
		"GET http://a/d HTTP/1.1\r\nHost: A\r\n\r\n" +
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /e HTTP/1.0\r\n\r\n"
	want := []string{"GET /a HTTP/1.1", "POST /b HTTP/1.1", "POST /c HTTP/1.1", "GET http://a/d HTTP/1.1", "OPTIONS * HTTP/1.1", "GET /e HTTP/1.0"}
	for _, n := range []int{0, 1, 2, 7} {
		lines, err := heads([]byte(raw), n)
		if err != nil {
			t.Fatalf("pieces of %d: %v", n, err)
		}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Fatalf("pieces of %d: heads %q, want %q", n, lines, want)
		}
	}
}

func TestFramerRejectsEveryVector(t *testing.T) {
	for _, v := range framingtest.Vectors {
		for _, n := range []int{0, 1} {
			_, err := heads([]byte(v.Raw()), n)
			if err == nil || err.Status != v.Status {
				t.Errorf("%s (pieces of %d): error %v, want status %d", v.Name, n, err, v.Status)
			}
		}
	}
}

// recorder is a handler that notes the request line of each request per
// client address, reading bodies as a proxy does (in full duplex).
type recorder struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.note(r.RemoteAddr, r.Method+" "+r.RequestURI+" "+r.Proto)
	_ = http.NewResponseController(w).EnableFullDuplex()
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		w.Header().Set("Connection", "close")
		WriteProblem(w, NewProblem(http.StatusBadRequest, err.Error()))
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// fast is the recorder as the fast engine's handler; what the fast engine
// hands over goes to ServeHTTP.
func (rec *recorder) fast(ctx *fasthttp.RequestCtx) {
	rec.note(ctx.RemoteAddr().String(), string(ctx.Method())+" "+string(ctx.RequestURI())+" "+string(ctx.Request.Header.Protocol()))
	ctx.SetBodyString("ok")
}

func (rec *recorder) note(addr, line string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.seen[addr] = append(rec.seen[addr], line)
}

// forget drops what was seen from addr: a new connection may reuse the
// port of an old one.
func (rec *recorder) forget(addr string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	delete(rec.seen, addr)
}

func (rec *recorder) requests(addr string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.seen[addr]
}

func startRecorder(t testing.TB) (*HTTPServer, *recorder) {
	t.Helper()
	return startRecorderOn(t, false)
}

// startRecorderOn starts a recorder on net/http, or with fast on the fast
// engine (net/http then serving only what it hands over).
func startRecorderOn(t testing.TB, fast bool) (*HTTPServer, *recorder) {
	t.Helper()
	rec := &recorder{seen: map[string][]string{}}
	var opts []ServerOption
	if fast {
		opts = append(opts, WithFastHTTP1(rec.fast))
	}
	srv := NewHTTPServer("framing", &http.Server{Addr: "127.0.0.1:0", Handler: rec, ReadHeaderTimeout: 5 * time.Second}, opts...)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv, rec
}

// exchange sends raw on a new connection, half-closes it, and reads
// answers until the server closes; it returns the statuses and the
// client's address.
func exchange(t testing.TB, addr string, raw []byte, rec *recorder) (statuses []int, local string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rec.forget(c.LocalAddr().String())
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write(raw)
	_ = c.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the server neither answered nor closed")
			}
			return statuses, c.LocalAddr().String()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		statuses = append(statuses, resp.StatusCode)
	}
}

func TestFramingAnswersPipelinedRequestsBeforeTheBadOne(t *testing.T) {
	srv, rec := startRecorder(t)
	raw := "GET /a HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi" +
		"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: a\r\n\r\n"
	statuses, local := exchange(t, srv.Addr(), []byte(raw), rec)
	if got := rec.requests(local); strings.Join(got, "|") != "GET /a HTTP/1.1|POST /b HTTP/1.1" {
		t.Errorf("handler saw %q, want /a and /b only", got)
	}
	if len(statuses) != 3 || statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 400 {
		t.Errorf("answers %v, want 200, 200, 400 and the end", statuses)
	}
}

func TestFramingUpgradeNotTakenIsReadAsRequests(t *testing.T) {
	srv, rec := startRecorder(t)
	raw := "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
		"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
	statuses, local := exchange(t, srv.Addr(), []byte(raw), rec)
	if got := rec.requests(local); len(got) != 2 || len(statuses) != 2 {
		t.Fatalf("handler saw %q, answers %v: want both requests served", got, statuses)
	}
}

func TestFramingUpgradeTakenFlowsAsItIs(t *testing.T) {
	srv := NewHTTPServer("upgrade", &http.Server{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(c, brw) // echo, bytes that are not HTTP included
	})})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	const frames = "\x00\x01 not http\r\n\n\r\x7f"
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"+frames)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("answer %v, %v", resp, err)
	}
	got := make([]byte, len(frames))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != frames {
		t.Fatalf("echoed %q, %v; want %q", got, err, frames)
	}
}

// FuzzFraming sends raw bytes to an HTTP/1.1 listener and checks that
// net/http never reads a request the framer did not pass as one: each
// request the handler sees starts where the framer found a head, and a
// framing error ends the connection.
func FuzzFraming(f *testing.F) {
	for _, v := range framingtest.Vectors {
		f.Add([]byte(v.Raw()))
	}
	f.Add([]byte("GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\n\r\n"))
	// Each engine's handlers see only requests the framer passed, in order.
	engines := map[string]bool{"net/http": false, "fasthttp": true}
	servers := map[string]*HTTPServer{}
	recs := map[string]*recorder{}
	for name, fast := range engines {
		servers[name], recs[name] = startRecorderOn(f, fast)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 8<<10 {
			return
		}
		approved, _ := heads(raw, 0)
		for name := range engines {
			_, local := exchange(t, servers[name].Addr(), raw, recs[name])
			seen := recs[name].requests(local)
			if len(seen) > len(approved) {
				t.Fatalf("%s: the handlers saw %q; the framer passed only %q", name, seen, approved)
			}
			for i, line := range seen {
				if line != approved[i] {
					t.Fatalf("%s: request %d is %q where the framer passed %q", name, i, line, approved[i])
				}
			}
		}
	})
}

// BenchmarkFramer is the framer's cost for a typical request head: what
// every HTTP/1.1 request pays for its framing checks.
func BenchmarkFramer(b *testing.B) {
	head := []byte("GET /api/products/42?full=1 HTTP/1.1\r\nHost: shop.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, br\r\nAccept-Language: en-GB,en;q=0.9\r\n" +
		"Cookie: session=0123456789abcdef0123456789abcdef\r\nConnection: keep-alive\r\n\r\n")
	f := newFramer()
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ev, err := f.scan(head); err != nil || ev != evHead|evEnd {
			b.Fatal(ev, err)
		}
	}
}
