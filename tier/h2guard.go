package tier

import (
	"crypto/tls"
	"encoding/binary"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// The budget of stream resets of one HTTP/2 connection, a token bucket:
// h2ResetBurst at once, refilled at h2ResetRate a second. A client that
// resets more ends its connection (CVE-2023-44487, "rapid reset").
//
// A browser leaving a page cancels what it had open, at most
// h2MaxStreams at a time: the burst is twice that. Node.js settled on a
// bucket too (streamResetBurst 1000, streamResetRate 33/s); Envoy closes a
// connection once more than half of its streams are reset within a second
// of opening, checked after 500 streams; nginx bounds the streams it
// starts per read of the socket and the requests per connection (1000);
// HAProxy counts such resets as "glitches" against a threshold; Go's
// server only queues at most 4 x MaxConcurrentStreams handlers not yet
// started. The rate is Node's.
const (
	h2ResetBurst = 2 * h2MaxStreams
	h2ResetRate  = 33 // per second
)

// h2ClientPreface is what an HTTP/2 client sends before its first frame.
const h2ClientPreface = len(http2.ClientPreface)

// frameHeaderLen is the size of an HTTP/2 frame header: 24 bits of
// payload length, the type, the flags and 31 bits of stream ID.
const frameHeaderLen = 9

// h2Guard sits between a TLS connection and the HTTP/2 server: it reads
// the frame headers as the server's reads pass through (the payloads are
// not copied, only skipped over), counts the streams the client opens and
// resets, and once the client has reset more than its budget, fails the
// server's next read with ENHANCE_YOUR_CALM. The server then sends that
// GOAWAY itself, on its own writer, and reads no more from the client.
// Once the GOAWAY has gone out, the guard closes the connection, rather
// than leave it to the server's grace second: a flooder that connects
// again at once would otherwise keep a second's worth of connections.
type h2Guard struct {
	*tls.Conn // ConnectionState (r.TLS), NetConn (the connection's limits)
	report    *limitReport
	calm      atomic.Bool // over budget: the next read fails

	// The client's frames, followed by the one goroutine reading them.
	in         frameScanner
	lastStream uint32 // the highest stream the client opened
	opened     int64
	resets     int64
	tokens     float64   // resets left in the budget
	filled     time.Time // when tokens was last refilled

	// The server's frames; its writes come one at a time.
	out frameScanner
}

func newH2Guard(c *tls.Conn, report *limitReport) *h2Guard {
	return &h2Guard{Conn: c, report: report, in: frameScanner{skip: h2ClientPreface}, tokens: h2ResetBurst, filled: time.Now()}
}

func (g *h2Guard) Read(p []byte) (int, error) {
	if g.calm.Load() {
		// The server's frame reader passes a ConnectionError on as a
		// GOAWAY with its code, and stops reading.
		return 0, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	n, err := g.Conn.Read(p)
	g.in.scan(p[:n], g.frameIn)
	return n, err
}

func (g *h2Guard) Write(p []byte) (int, error) {
	n, err := g.Conn.Write(p)
	goAway := false
	g.out.scan(p[:n], func(t http2.FrameType, _ uint32) { goAway = goAway || t == http2.FrameGoAway })
	if goAway && g.calm.Load() {
		_ = g.CloseWrite()
	}
	return n, err
}

// frameIn counts one of the client's frames by its header.
func (g *h2Guard) frameIn(t http2.FrameType, stream uint32) {
	switch t {
	case http2.FrameHeaders:
		if stream > g.lastStream { // not trailers, which come on an open stream
			g.lastStream = stream
			g.opened++
		}
	case http2.FrameRSTStream:
		g.resets++
		now := time.Now()
		g.tokens = min(h2ResetBurst, g.tokens+now.Sub(g.filled).Seconds()*h2ResetRate)
		g.filled = now
		if g.tokens >= 1 {
			g.tokens--
			return
		}
		if !g.calm.Swap(true) {
			g.report.resetFloods.Add(1)
			g.report.hit()
			g.report.log.Debug("HTTP/2 client reset too many streams", "server", g.report.server,
				"remote", g.RemoteAddr().String(), "opened", g.opened, "reset", g.resets)
		}
	}
}

// frameScanner follows HTTP/2 frames through a byte stream cut anywhere:
// it copies the 9-byte headers and skips over the payloads.
type frameScanner struct {
	skip  int // bytes still to pass over: a payload, or the client preface
	head  [frameHeaderLen]byte
	headN int // bytes of head read so far
}

// scan passes over b, which continues what the scans before it saw, and
// calls frame with each frame header completed in it.
func (s *frameScanner) scan(b []byte, frame func(t http2.FrameType, stream uint32)) {
	for len(b) > 0 {
		if s.skip > 0 {
			k := min(s.skip, len(b))
			s.skip -= k
			b = b[k:]
			continue
		}
		k := copy(s.head[s.headN:], b)
		s.headN += k
		b = b[k:]
		if s.headN < frameHeaderLen {
			return
		}
		s.headN = 0
		s.skip = int(s.head[0])<<16 | int(s.head[1])<<8 | int(s.head[2])
		frame(http2.FrameType(s.head[3]), binary.BigEndian.Uint32(s.head[5:])&(1<<31-1))
	}
}
