package web

import (
	"bufio"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/tier"
)

// ServeFast answers GET and HEAD for files under the root on the fast
// engine (tier.WithFastHTTP1), by the same rules as ServeHTTP. The
// request's context, for logs and problems, is tier.FastContext(ctx).
func (f *Files) ServeFast(ctx *fasthttp.RequestCtx) {
	f.serveFast(ctx, tier.FastContext(ctx))
}

// serveFast answers ctx's request under reqCtx, which carries its ID.
func (f *Files) serveFast(ctx *fasthttp.RequestCtx, reqCtx context.Context) {
	x := fastExchange{ctx: ctx, reqCtx: reqCtx}
	original := ctx.URI().PathOriginal()
	x.escaped = unsafeString(original)
	x.decoded = x.escaped
	if strings.IndexByte(x.escaped, '%') >= 0 {
		// Decoded once, as net/http decodes: fasthttp's own path is
		// cleaned as well, and the rules refuse rather than clean.
		p, err := url.PathUnescape(x.escaped)
		if err != nil {
			refuse(f, x, tier.NewProblem(http.StatusBadRequest, errBadPath.Error()+": bad escape"))
			return
		}
		x.decoded = p
	}
	serveRequest(f, x)
}

// fastExchange is an exchange on fasthttp. Its strings view the request's
// memory, valid while the handler runs: a rule that keeps one longer
// copies it.
type fastExchange struct {
	ctx              *fasthttp.RequestCtx
	reqCtx           context.Context
	escaped, decoded string
}

// unsafeString views b as a string without copying it.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (x fastExchange) method() string      { return unsafeString(x.ctx.Method()) }
func (x fastExchange) path() string        { return x.decoded }
func (x fastExchange) escapedPath() string { return x.escaped }
func (x fastExchange) rawQuery() string    { return unsafeString(x.ctx.URI().QueryString()) }
func (x fastExchange) encodedSlash() bool  { return hasEncodedSlash(x.escaped) }
func (x fastExchange) context() context.Context {
	return x.reqCtx
}

func (x fastExchange) header(k string) string {
	return unsafeString(x.ctx.Request.Header.Peek(k))
}

func (x fastExchange) headerList(k string) string {
	vs := x.ctx.Request.Header.PeekAll(k)
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return unsafeString(vs[0])
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = string(v)
	}
	return strings.Join(parts, ",")
}

func (x fastExchange) setHeader(k string, v []string) { x.ctx.Response.Header.Set(k, v[0]) }
func (x fastExchange) addHeader(k, v string)          { x.ctx.Response.Header.Add(k, v) }
func (x fastExchange) delHeader(k string)             { x.ctx.Response.Header.Del(k) }
func (x fastExchange) writeHeader(status int)         { x.ctx.SetStatusCode(status) }

// write sends body without copying it: bodies in memory are never
// modified.
func (x fastExchange) write(body []byte) { x.ctx.Response.SetBodyRaw(body) }

func (x fastExchange) sendFile(file fs.File, n int64, release func(fs.File)) {
	x.ctx.Response.SetBodyStream(&fileBody{file: file, n: n, release: release}, int(n))
}

func (x fastExchange) sendParts(content []byte, file fs.File, parts []bodyPart, tail string, n int64, release func(fs.File)) {
	body := fasthttp.NewStreamReader(func(w *bufio.Writer) {
		defer release(file)
		writeParts(w, content, file, parts, tail)
	})
	x.ctx.Response.SetBodyStream(body, int(n))
}

func (x fastExchange) stream(produce func(io.Writer)) {
	x.ctx.Response.SetBodyStreamWriter(func(w *bufio.Writer) { produce(w) })
}

func (x fastExchange) problem(p *tier.Problem) {
	if p.Instance == "" {
		p.Instance = x.escaped
	}
	if p.RequestID == "" {
		p.RequestID = tier.RequestID(x.reqCtx)
	}
	h := &x.ctx.Response.Header
	for _, k := range problemDropped {
		h.Del(k)
	}
	body := tier.ProblemAnswer(p, x.headerList("Accept"), h.Set)
	x.ctx.SetStatusCode(p.Status)
	x.ctx.SetBody(body)
}

// problemDropped are the headers of a representation that a problem
// answer must not carry (tier.WriteProblem drops them on net/http).
var problemDropped = []string{"Content-Length", "Content-Encoding", "Etag", "Last-Modified"}

// fileBody is the body stream of a file on fasthttp: it hands the file
// itself to the connection, for sendfile, and gives it back to release
// when fasthttp closes the stream, sent or not.
type fileBody struct {
	file    fs.File
	n       int64
	release func(fs.File)
}

func (b *fileBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.file.Read(p)
	b.n -= int64(n)
	return n, err
}

// WriteTo offers the file inside an io.LimitedReader to w's ReadFrom,
// which fasthttp turns into sendfile on a plain connection.
func (b *fileBody) WriteTo(w io.Writer) (int64, error) {
	lr := &io.LimitedReader{R: b.file, N: b.n}
	var n int64
	var err error
	if rf, ok := w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(lr)
	} else {
		n, err = io.Copy(w, lr)
	}
	b.n -= n
	return n, err
}

func (b *fileBody) Close() error {
	if b.file != nil {
		b.release(b.file)
		b.file = nil
	}
	return nil
}
