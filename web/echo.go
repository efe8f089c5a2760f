package web

import (
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
)

// EchoHandler returns f as an Echo handler, for routes such as
// e.GET("/static/*", files.EchoHandler()). Headers go through Echo's
// response (so Before hooks, status and size are seen by middleware), but
// file bodies are copied to the underlying ResponseWriter, so that
// net/http can use sendfile, which Echo's wrapper would hide.
func (f *Files) EchoHandler() echo.HandlerFunc {
	return func(c echo.Context) error {
		f.ServeHTTP(echoWriter{c.Response()}, c.Request())
		return nil
	}
}

// echoWriter is an http.ResponseWriter over an *echo.Response that keeps
// the ReadFrom of the writer beneath it.
type echoWriter struct{ r *echo.Response }

var (
	_ io.ReaderFrom       = echoWriter{}
	_ http.ResponseWriter = echoWriter{}
)

func (w echoWriter) Header() http.Header         { return w.r.Header() }
func (w echoWriter) WriteHeader(code int)        { w.r.WriteHeader(code) }
func (w echoWriter) Write(b []byte) (int, error) { return w.r.Write(b) }
func (w echoWriter) Unwrap() http.ResponseWriter { return w.r.Writer }

// ReadFrom commits the headers through Echo, then lets the underlying
// writer pull from src (sendfile when src is a file and the connection a
// TCP socket), and counts the bytes into the Echo response.
func (w echoWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.r.Committed {
		w.r.WriteHeader(http.StatusOK)
	}
	n, err := io.Copy(w.r.Writer, src)
	w.r.Size += n
	return n, err
}
