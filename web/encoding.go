package web

import (
	"bytes"
	"io"
	"mime"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// encoding is a content coding the handler can send.
type encoding uint8

const (
	identity encoding = iota
	encBrotli
	encZstd
	encGzip
	numEncodings
)

// preference lists the codings best first: it breaks ties between equal
// q-values in Accept-Encoding.
var preference = [...]encoding{encBrotli, encZstd, encGzip}

func (e encoding) token() string {
	switch e {
	case encBrotli:
		return "br"
	case encZstd:
		return "zstd"
	case encGzip:
		return "gzip"
	}
	return "identity"
}

// ext is the sidecar file suffix of a precompressed file.
func (e encoding) ext() string {
	switch e {
	case encBrotli:
		return ".br"
	case encZstd:
		return ".zst"
	case encGzip:
		return ".gz"
	}
	return ""
}

// negotiate picks, among the codings set in avail, the one the client
// prefers by q-value (ties broken by preference), or identity.
func negotiate(acceptEncoding string, avail [numEncodings]bool) encoding {
	if acceptEncoding == "" {
		return identity
	}
	var q [numEncodings]float64
	var seen [numEncodings]bool
	star, starSeen := 0.0, false
	for part := range strings.SplitSeq(acceptEncoding, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		weight := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				weight = f
			}
		}
		switch name {
		case "*":
			star, starSeen = weight, true
			continue
		case "x-gzip":
			name = "gzip"
		}
		for _, e := range preference {
			if e.token() == name {
				q[e], seen[e] = weight, true
			}
		}
	}
	best, bestQ := identity, 0.0
	for _, e := range preference {
		w := q[e]
		if !seen[e] && starSeen {
			w = star
		}
		if avail[e] && w > bestQ {
			best, bestQ = e, w
		}
	}
	return best
}

// contentType returns the media type for name by its extension, with
// application/octet-stream (what nginx sends) for unknown extensions.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// compressible reports whether a file gains from compression: text,
// JSON, JavaScript, XML, SVG, WebAssembly and uncompressed fonts, by media
// type, except ".svgz" files, which are gzip data that many mime.types
// files (nginx's among them) label image/svg+xml.
func compressible(name, ctype string) bool {
	if strings.HasSuffix(strings.ToLower(name), ".svgz") {
		return false
	}
	mt, _, _ := strings.Cut(ctype, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	if strings.HasPrefix(mt, "text/") {
		return true
	}
	switch mt {
	case "application/javascript", "application/json", "application/xml",
		"application/wasm", "application/manifest+json", "application/ld+json",
		"application/xhtml+xml", "application/rss+xml", "application/atom+xml",
		"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon",
		"font/ttf", "font/otf", "application/vnd.ms-fontobject":
		return true
	}
	return strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}

// compressors keeps reusable encoders: building a zstd or brotli encoder
// costs more than compressing a small file.
type compressors struct {
	pools [numEncodings]sync.Pool
}

// Compression levels: fast enough to stream, close to the best ratios for
// web text.
const (
	brotliLevel = 5
	gzipLevel   = 6
)

type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

type zstdWriter struct{ *zstd.Encoder }

func (z zstdWriter) Reset(w io.Writer) { z.Encoder.Reset(w) }

func newCompressors() *compressors {
	c := &compressors{}
	c.pools[encBrotli].New = func() any { return brotli.NewWriterLevel(io.Discard, brotliLevel) }
	c.pools[encGzip].New = func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, gzipLevel)
		return w
	}
	c.pools[encZstd].New = func() any {
		w, _ := zstd.NewWriter(io.Discard, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		return zstdWriter{w}
	}
	return c
}

// get returns an encoder for e writing to w; put it back with put after
// Close.
func (c *compressors) get(e encoding, w io.Writer) resetWriter {
	zw := c.pools[e].Get().(resetWriter)
	zw.Reset(w)
	return zw
}

func (c *compressors) put(e encoding, zw resetWriter) {
	zw.Reset(io.Discard)
	c.pools[e].Put(zw)
}

// compress returns data encoded with e.
func (c *compressors) compress(e encoding, data []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(data) / 2)
	zw := c.get(e, &buf)
	_, _ = zw.Write(data)
	_ = zw.Close()
	c.put(e, zw)
	return buf.Bytes()
}
