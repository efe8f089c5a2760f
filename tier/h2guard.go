package tier

import (
	"crypto/tls"
	"encoding/binary"
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
// GOAWAY itself, on its own writer, reads no more from the client, and
// closes the connection.
//
// Its fields are touched only by the one goroutine that reads frames.
type h2Guard struct {
	*tls.Conn // ConnectionState (r.TLS), NetConn (the connection's limits)
	report    *limitReport

	preface int // bytes of the client preface still to pass over
	head    [frameHeaderLen]byte
	headN   int // bytes of head read so far
	payload int // bytes of the current frame's payload still to pass over

	lastStream uint32 // the highest stream the client opened
	opened     int64
	resets     int64
	tokens     float64   // resets left in the budget
	filled     time.Time // when tokens was last refilled
	calm       bool      // over budget: the next read fails
}

func newH2Guard(c *tls.Conn, report *limitReport) *h2Guard {
	return &h2Guard{Conn: c, report: report, preface: h2ClientPreface, tokens: h2ResetBurst, filled: time.Now()}
}

func (g *h2Guard) Read(p []byte) (int, error) {
	if g.calm {
		// The server's frame reader passes a ConnectionError on as a
		// GOAWAY with its code, and stops reading.
		return 0, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	n, err := g.Conn.Read(p)
	g.scan(p[:n])
	return n, err
}

// scan follows the frames through b, which continues what the reads before
// it returned.
func (g *h2Guard) scan(b []byte) {
	for len(b) > 0 {
		switch {
		case g.preface > 0:
			k := min(g.preface, len(b))
			g.preface -= k
			b = b[k:]
		case g.payload > 0:
			k := min(g.payload, len(b))
			g.payload -= k
			b = b[k:]
		default:
			k := copy(g.head[g.headN:], b)
			g.headN += k
			b = b[k:]
			if g.headN < frameHeaderLen {
				return
			}
			g.headN = 0
			g.payload = int(g.head[0])<<16 | int(g.head[1])<<8 | int(g.head[2])
			g.frame(http2.FrameType(g.head[3]), binary.BigEndian.Uint32(g.head[5:])&(1<<31-1))
		}
	}
}

// frame counts one frame by its header.
func (g *h2Guard) frame(t http2.FrameType, stream uint32) {
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
		if g.tokens < 1 {
			g.calm = true
			g.report.resetFloods.Add(1)
			g.report.hit()
			g.report.log.Debug("HTTP/2 client reset too many streams", "server", g.report.server,
				"remote", g.RemoteAddr().String(), "opened", g.opened, "reset", g.resets)
			return
		}
		g.tokens--
	}
}
