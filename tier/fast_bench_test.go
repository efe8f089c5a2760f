package tier_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/tier"
)

// BenchmarkFastServer is one request after another on a loopback
// keep-alive connection, answered "ok" by a trivial handler: on the fast
// engine, and on net/http through the same HTTPServer for comparison. The
// client reads each answer by its length, so that what it allocates is
// the server's.
func BenchmarkFastServer(b *testing.B) {
	ok := []byte("ok")
	for _, engine := range []struct {
		name string
		opts []tier.ServerOption
	}{
		{"fasthttp", []tier.ServerOption{tier.WithFastHTTP1(func(ctx *fasthttp.RequestCtx) { ctx.SetBody(ok) })}},
		{"net-http", nil},
	} {
		b.Run(engine.name, func(b *testing.B) {
			hs := &http.Server{Addr: "127.0.0.1:0", ReadHeaderTimeout: 5 * time.Second,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(ok) })}
			srv := tier.NewHTTPServer("bench", hs, engine.opts...)
			if err := srv.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer srv.Stop(context.Background())
			c, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			// The first answer sets the length of every answer: the Date
			// header is always as long.
			counting := &countingReader{r: c}
			br := bufio.NewReader(counting)
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			size := counting.n - br.Buffered()
			answer := make([]byte, size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br, answer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
