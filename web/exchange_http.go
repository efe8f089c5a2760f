package web

import (
	"context"
	"io"
	"io/fs"
	"net/http"

	"github.com/threetier/threetier/tier"
)

// httpExchange is an exchange on net/http: the headers go into the
// ResponseWriter's map as shared slices, and a file goes out through
// io.Copy, which net/http turns into sendfile.
type httpExchange struct {
	w http.ResponseWriter
	r *http.Request
}

func (x httpExchange) method() string      { return x.r.Method }
func (x httpExchange) path() string        { return x.r.URL.Path }
func (x httpExchange) escapedPath() string { return x.r.URL.EscapedPath() }
func (x httpExchange) rawQuery() string    { return x.r.URL.RawQuery }

// encodedSlash: net/http keeps the escaped path in RawPath only when it
// differs from the default escaping of Path, as it does with a "%2F".
func (x httpExchange) encodedSlash() bool {
	return x.r.URL.RawPath != "" && hasEncodedSlash(x.r.URL.RawPath)
}

func (x httpExchange) header(k string) string     { return header(x.r.Header, k) }
func (x httpExchange) headerList(k string) string { return headerList(x.r.Header, k) }
func (x httpExchange) context() context.Context   { return x.r.Context() }

func (x httpExchange) setHeader(k string, v []string) { x.w.Header()[k] = v }
func (x httpExchange) addHeader(k, v string)          { h := x.w.Header(); h[k] = append(h[k], v) }
func (x httpExchange) delHeader(k string)             { delete(x.w.Header(), k) }
func (x httpExchange) writeHeader(status int)         { x.w.WriteHeader(status) }
func (x httpExchange) write(body []byte)              { _, _ = x.w.Write(body) }
func (x httpExchange) problem(p *tier.Problem)        { tier.ServeProblem(x.w, x.r, p) }
func (x httpExchange) stream(produce func(io.Writer)) { produce(x.w) }

func (x httpExchange) sendFile(file fs.File, n int64, release func(fs.File)) {
	defer release(file)
	defer cork(x.w, x.r)()
	// CopyN hands the *os.File to the ResponseWriter's ReadFrom inside
	// an io.LimitedReader, which net/http turns into sendfile.
	_, _ = io.CopyN(x.w, file, n)
}

func (x httpExchange) sendParts(content []byte, file fs.File, parts []bodyPart, tail string, _ int64, release func(fs.File)) {
	defer release(file)
	if file != nil {
		// Part headers and spans leave together in full segments.
		defer cork(x.w, x.r)()
	}
	writeParts(x.w, content, file, parts, tail)
}
