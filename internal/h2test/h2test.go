// Package h2test is an HTTP/2 client that writes frames by hand, for tests
// that must do what a well-behaved client would not: reset streams as
// fast as it can, or never take a stream's data.
package h2test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Conn is a client connection. Its writes are buffered until Flush; one
// goroutine may read frames with Next while others write.
type Conn struct {
	c   *tls.Conn
	fr  *http2.Framer
	w   *bufio.Writer
	mu  sync.Mutex // writes
	hb  bytes.Buffer
	enc *hpack.Encoder
}

// Dial connects to addr over TLS (trusting roots) with ALPN "h2", and
// sends the preface and the client's settings.
func Dial(addr string, roots *x509.CertPool, settings ...http2.Setting) (*Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tc, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{http2.NextProtoTLS}})
	if err != nil {
		return nil, err
	}
	c := &Conn{c: tc, w: bufio.NewWriterSize(tc, 64<<10)}
	c.fr = http2.NewFramer(c.w, tc)
	c.enc = hpack.NewEncoder(&c.hb)
	if _, err := c.w.WriteString(http2.ClientPreface); err != nil {
		tc.Close()
		return nil, err
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		tc.Close()
		return nil, err
	}
	if err := c.Flush(); err != nil {
		tc.Close()
		return nil, err
	}
	return c, nil
}

// Get opens stream id with a GET for path, request ended.
func (c *Conn) Get(id uint32, path string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hb.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1"}, {":path", path}} {
		_ = c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hb.Bytes(), EndStream: true, EndHeaders: true})
}

// Reset cancels stream id.
func (c *Conn) Reset(id uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fr.WriteRSTStream(id, http2.ErrCodeCancel)
}

// WindowUpdate grants the server n more bytes on stream id (0: the
// connection).
func (c *Conn) WindowUpdate(id, n uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fr.WriteWindowUpdate(id, n)
}

// Ping sends a PING and flushes: its answer comes after the server has
// read every frame before it.
func (c *Conn) Ping() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.fr.WritePing(false, [8]byte{'t', 'h', 'r', 'e', 'e'}); err != nil {
		return err
	}
	return c.w.Flush()
}

// Flush sends what was written.
func (c *Conn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Flush()
}

// Next reads the next frame, acknowledging the server's settings and
// pings on the way. The frame is valid until the next call. An
// acknowledgement that cannot be sent is not an error of Next: what the
// server sent before it went away is still to be read.
func (c *Conn) Next() (http2.Frame, error) {
	f, err := c.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			c.ack(func() error { return c.fr.WriteSettingsAck() })
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			c.ack(func() error { return c.fr.WritePing(true, f.Data) })
		}
	}
	return f, nil
}

func (c *Conn) ack(write func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if write() == nil {
		_ = c.w.Flush()
	}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }
