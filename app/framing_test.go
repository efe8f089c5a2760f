package app

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/internal/framingtest"
)

// paths notes the path of each request a route received.
type paths struct {
	mu   sync.Mutex
	seen []string
}

func (p *paths) Paths() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// TestAppFraming sends every request-smuggling vector to the app tier's
// listener: each is answered as a problem, the connection closes, and no
// route sees the request hidden behind the bad framing.
func TestAppFraming(t *testing.T) {
	s := newTestServer(t, Config{})
	rec := &paths{}
	s.Echo().Any("/api/*", func(c echo.Context) error {
		rec.mu.Lock()
		rec.seen = append(rec.seen, c.Request().URL.Path)
		rec.mu.Unlock()
		if _, err := io.Copy(io.Discard, c.Request().Body); err != nil {
			return err
		}
		return c.String(http.StatusOK, "ok")
	})
	framingtest.Run(t, framingtest.TCP(strings.TrimPrefix(startServer(t, s), "http://")), rec)
}
