package web

import (
	"context"
	"errors"
	"io"
	"io/fs"

	"github.com/threetier/threetier/tier"
)

// exchange is one request and its answer as the file rules see them,
// whichever engine carries them: httpExchange for net/http, fastExchange
// for fasthttp. The rules (files.go, listing.go, variants.go) are written
// once, generic over it; each engine's exchange is a small struct passed
// by value, so that serving through it allocates nothing.
//
// The rules decide every status, header and body; an exchange only moves
// them to its engine's response.
type exchange interface {
	method() string
	// path is the request path, percent-decoded once; escapedPath is the
	// path as the client sent it, and rawQuery its query.
	path() string
	escapedPath() string
	rawQuery() string
	// encodedSlash reports a "%2F" in the path as sent.
	encodedSlash() bool
	// header returns the first value of a request header, headerList all
	// of them joined by commas; keys are canonical.
	header(canonicalKey string) string
	headerList(canonicalKey string) string
	context() context.Context

	// setHeader sets a response header to a shared, never modified
	// value; addHeader adds one value; delHeader removes a header.
	setHeader(canonicalKey string, value []string)
	addHeader(canonicalKey, value string)
	delHeader(canonicalKey string)
	// writeHeader sends the status and the headers set so far.
	writeHeader(status int)
	// write sends a body held in memory that nothing modifies.
	write(body []byte)
	// sendFile sends the n bytes of file from its offset as the body and
	// then gives file to release, once sent or abandoned. The engine may
	// do so after the handler has returned.
	sendFile(file fs.File, n int64, release func(fs.File))
	// sendParts sends a body of n bytes made of parts of file (nil: of
	// content), as writeParts writes it. release is as for sendFile.
	sendParts(content []byte, file fs.File, parts []bodyPart, tail string, n int64, release func(fs.File))
	// stream sends a body of unknown length that produce writes; produce
	// must release what it holds when done. The engine may call it after
	// the handler has returned, but always calls it.
	stream(produce func(io.Writer))
	// problem sends p as problem+json, with the request's path and ID.
	problem(p *tier.Problem)
}

// bodyPart is a span of a body's source with the bytes that precede it.
type bodyPart struct {
	head string
	span byteRange
}

// noRelease is the release of a body that holds no descriptor.
func noRelease(fs.File) {}

// writeParts writes a multipart/byteranges body: each part's head and
// span of file, or of content when file is nil, then tail.
func writeParts(w io.Writer, content []byte, file fs.File, parts []bodyPart, tail string) {
	for _, p := range parts {
		if _, err := io.WriteString(w, p.head); err != nil {
			return
		}
		if file == nil {
			if _, err := w.Write(content[p.span.start:p.span.end]); err != nil {
				return
			}
			continue
		}
		span, err := spanReader(file, p.span)
		if err != nil {
			return
		}
		if _, err := io.Copy(w, span); err != nil {
			return
		}
	}
	_, _ = io.WriteString(w, tail)
}

// seek moves file to offset, for a span sent from there.
func seek(file fs.File, offset int64) error {
	s, ok := file.(io.Seeker)
	if !ok {
		return errors.New("file does not support ranges")
	}
	_, err := s.Seek(offset, io.SeekStart)
	return err
}

// spanReader reads one span of file: through Seek, so that an *os.File
// stays itself for sendfile, or through ReadAt.
func spanReader(file fs.File, br byteRange) (io.Reader, error) {
	if _, ok := file.(io.Seeker); ok {
		if err := seek(file, br.start); err != nil {
			return nil, err
		}
		return io.LimitReader(file, br.length()), nil
	}
	if ra, ok := file.(io.ReaderAt); ok {
		return io.NewSectionReader(ra, br.start, br.length()), nil
	}
	return nil, errors.New("file does not support ranges")
}
