package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// maxRanges bounds the ranges honoured in one request; more, or ranges
// that add up to more than the file, are answered with the whole file so
// that a request cannot multiply the bytes sent.
const maxRanges = 16

// byteRange is an inclusive-exclusive span [start, end) of a file.
type byteRange struct{ start, end int64 }

func (r byteRange) length() int64 { return r.end - r.start }

func (r byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.end-1, 10) + "/" + strconv.FormatInt(size, 10)
}

var (
	// errRangeIgnored: the header is malformed or not worth honouring;
	// send the whole file (RFC 9110 §14.2 lets a server ignore Range).
	errRangeIgnored = errors.New("range ignored")
	// errUnsatisfiable: no range overlaps the file; send 416.
	errUnsatisfiable = errors.New("range not satisfiable")
)

// parseRange reads a Range header against a file of size bytes.
func parseRange(h string, size int64) ([]byteRange, error) {
	unit, set, ok := strings.Cut(h, "=")
	// An empty file has no ranges to give: send it whole (as nginx does)
	// rather than 416, which confuses download resumers.
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") || size == 0 {
		return nil, errRangeIgnored
	}
	var out []byteRange
	var total int64
	specs := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		specs++
		if specs > maxRanges {
			return nil, errRangeIgnored
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return nil, errRangeIgnored
		}
		var r byteRange
		if first == "" {
			n, err := parseDigits(last)
			if err != nil {
				return nil, errRangeIgnored
			}
			if n == 0 {
				continue // a zero-length suffix is unsatisfiable
			}
			r = byteRange{max(size-n, 0), size}
		} else {
			s, err := parseDigits(first)
			if err != nil {
				return nil, errRangeIgnored
			}
			e := size - 1
			if last != "" {
				if e, err = parseDigits(last); err != nil || e < s {
					return nil, errRangeIgnored
				}
			}
			if s >= size {
				continue
			}
			r = byteRange{s, min(e, size-1) + 1}
		}
		total += r.length()
		out = append(out, r)
	}
	if specs == 0 {
		return nil, errRangeIgnored
	}
	if len(out) == 0 {
		return nil, errUnsatisfiable
	}
	if total > size {
		return nil, errRangeIgnored
	}
	return out, nil
}

func parseDigits(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errRangeIgnored
	}
	return strconv.ParseInt(s, 10, 64)
}

// byteranges lays out a multipart/byteranges body: the part headers and the
// total length, known before anything is written.
type byteranges struct {
	boundary string
	heads    []string
	tail     string
	length   int64
}

func newByteranges(ranges []byteRange, ctype string, size int64) *byteranges {
	var b [12]byte
	_, _ = rand.Read(b[:])
	m := &byteranges{boundary: hex.EncodeToString(b[:])}
	for i, r := range ranges {
		var sb strings.Builder
		if i > 0 {
			sb.WriteString("\r\n")
		}
		sb.WriteString("--" + m.boundary + "\r\n")
		if ctype != "" {
			sb.WriteString("Content-Type: " + ctype + "\r\n")
		}
		sb.WriteString("Content-Range: " + r.contentRange(size) + "\r\n\r\n")
		m.heads = append(m.heads, sb.String())
		m.length += int64(sb.Len()) + r.length()
	}
	m.tail = "\r\n--" + m.boundary + "--\r\n"
	m.length += int64(len(m.tail))
	return m
}

func (m *byteranges) contentType() string {
	return "multipart/byteranges; boundary=" + m.boundary
}
