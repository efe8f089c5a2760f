package web

import (
	"bytes"
	"io"
	"mime"
	"path"
	"runtime"
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

// compressors hands out pooled encoders, at most limit at a time: an
// encoder is most of what a compression costs in memory, so bounding the
// encoders in use bounds that memory and the cores compression takes.
type compressors struct {
	pools [numEncodings]sync.Pool
	// slots holds one token per encoder in use.
	slots chan struct{}
}

// Encoder settings for on-the-fly use, with what one encoder holds once it
// has compressed 2 MiB of text (BenchmarkEncoderMemory, which also gives
// the ratios): brotli quality 5 with a 256 KiB window 4.7 MB (the default
// 4 MiB window: 19.1 MB, for the same ratio of 5.0 on web text); zstd with
// a 512 KiB window and one goroutine 2.5 MB (the 8 MiB default: 18.8 MB);
// gzip level 5 1.1 MB. A reused brotli encoder allocates 0.2 MB per use,
// the others nothing.
const (
	brotliLevel  = 5
	brotliLGWin  = 18
	zstdWindow   = 512 << 10
	gzipLevel    = 5
	slotsPerProc = 2 // compressions per core: some wait on slow clients
)

type resetWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

type zstdWriter struct{ *zstd.Encoder }

func (z zstdWriter) Reset(w io.Writer) { z.Encoder.Reset(w) }

// newCompressors returns encoders for at most limit compressions at once;
// zero means slotsPerProc per GOMAXPROCS.
func newCompressors(limit int) *compressors {
	if limit <= 0 {
		limit = slotsPerProc * runtime.GOMAXPROCS(0)
	}
	c := &compressors{slots: make(chan struct{}, limit)}
	c.pools[encBrotli].New = func() any {
		return brotli.NewWriterOptions(io.Discard, brotli.WriterOptions{Quality: brotliLevel, LGWin: brotliLGWin})
	}
	c.pools[encGzip].New = func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, gzipLevel)
		return w
	}
	c.pools[encZstd].New = func() any {
		w, _ := zstd.NewWriter(io.Discard, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow),
			zstd.WithLowerEncoderMem(true), zstd.WithEncoderLevel(zstd.SpeedDefault))
		return zstdWriter{w}
	}
	return c
}

// get returns an encoder for e writing to w, or nil when limit encoders
// are in use: the caller then sends the identity form rather than wait.
// Give it back with put after Close.
func (c *compressors) get(e encoding, w io.Writer) resetWriter {
	select {
	case c.slots <- struct{}{}:
	default:
		return nil
	}
	zw := c.pools[e].Get().(resetWriter)
	zw.Reset(w)
	return zw
}

func (c *compressors) put(e encoding, zw resetWriter) {
	zw.Reset(io.Discard)
	c.pools[e].Put(zw)
	<-c.slots
}

// compress returns src encoded with e, or errBusy when limit encoders are
// in use.
func (c *compressors) compress(e encoding, src io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	zw := c.get(e, &buf)
	if zw == nil {
		return nil, errBusy
	}
	defer c.put(e, zw)
	if _, err := io.Copy(zw, src); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	// The buffer grew by doubling: keep only the bytes.
	return bytes.Clone(buf.Bytes()), nil
}
