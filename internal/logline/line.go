// Package logline writes the lines of tier's loggers: the slog handler
// chain that adds a record's request ID and trace, and an encoder that
// writes access lines byte for byte as that chain would, at a fraction of
// its cost. The access log (internal/accesslog) writes through it.
package logline

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Line writes access lines without slog, byte for byte as the slog
// handler writing to the same output would: slog's JSON handler spends
// most of an access line's cost on generic attribute handling.
type Line struct {
	json bool
	// trace adds trace_id and span_id, as the handler chain does.
	trace bool
	// with holds the logger's With attributes, as its handler formats them.
	with []byte
	// w is shared with the slog handler, and locked: see LockedWriter.
	w    io.Writer
	bufs sync.Pool
}

// NewLine returns the encoder of lines written to w, as JSON or text; with
// trace, a line logged with a span carries its trace_id and span_id.
func NewLine(json, trace bool, w io.Writer) *Line {
	return &Line{json: json, trace: trace, w: w}
}

// WithAttrs returns l for a logger given attrs with With.
func (l *Line) WithAttrs(attrs []slog.Attr) *Line {
	return &Line{json: l.json, trace: l.trace, with: append(bytes.Clone(l.with), l.format(attrs)...), w: l.w}
}

// format returns attrs as slog's handler appends a logger's With
// attributes to its lines: it has the handler format them on a line with
// nothing else, and cuts them out of it.
func (l *Line) format(attrs []slog.Attr) []byte {
	var line bytes.Buffer
	var h slog.Handler
	prefix, suffix := `level=INFO msg=""`, "\n"
	if l.json {
		h = slog.NewJSONHandler(&line, nil)
		prefix, suffix = `{"level":"INFO","msg":""`, "}\n"
	} else {
		h = slog.NewTextHandler(&line, nil)
	}
	_ = h.WithAttrs(attrs).Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "", 0))
	return bytes.TrimSuffix(bytes.TrimPrefix(line.Bytes(), []byte(prefix)), []byte(suffix))
}

// Write writes the line of an access record, its message "access". It
// reports false, having written nothing, for a record it cannot write as
// slog would: one whose time slog's JSON handler rejects, or an attribute
// of another kind than string, int64 and duration.
func (l *Line) Write(ctx context.Context, at time.Time, level slog.Level, attrs []slog.Attr) bool {
	if y := at.Year(); l.json && (y < 0 || y >= 10000) {
		return false
	}
	bp, _ := l.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b, ok := l.appendLine(ctx, (*bp)[:0], at, level, attrs)
	if ok {
		_, _ = l.w.Write(b)
	}
	// Keep buffers of ordinary lines only, not one a huge URI grew.
	if cap(b) <= 16<<10 {
		*bp = b
		l.bufs.Put(bp)
	}
	return ok
}

func (l *Line) appendLine(ctx context.Context, b []byte, at time.Time, level slog.Level, attrs []slog.Attr) ([]byte, bool) {
	if l.json {
		b = append(b, `{"time":"`...)
		b = at.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"`...)
		b = append(b, level.String()...)
		b = append(b, `","msg":"access"`...)
	} else {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, at)
		b = append(b, " level="...)
		b = append(b, level.String()...)
		b = append(b, " msg=access"...)
	}
	b = append(b, l.with...)
	for _, a := range attrs {
		b = l.appendKey(b, a.Key)
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			b = l.appendString(b, v.String())
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindDuration:
			if l.json {
				b = strconv.AppendInt(b, int64(v.Duration()), 10)
			} else {
				b = append(b, v.Duration().String()...)
			}
		default:
			return b, false
		}
	}
	if sc := trace.SpanContextFromContext(ctx); l.trace && sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		b = l.appendKey(b, "trace_id")
		b = l.appendHex(b, tid[:])
		b = l.appendKey(b, "span_id")
		b = l.appendHex(b, sid[:])
	}
	if l.json {
		b = append(b, '}')
	}
	return append(b, '\n'), true
}

// appendKey appends the separator and key of an attribute; keys are the
// access log's own, which need no escaping.
func (l *Line) appendKey(b []byte, key string) []byte {
	if l.json {
		b = append(b, ',', '"')
		b = append(b, key...)
		return append(b, '"', ':')
	}
	b = append(b, ' ')
	b = append(b, key...)
	return append(b, '=')
}

func (l *Line) appendString(b []byte, s string) []byte {
	if l.json {
		return appendJSONString(b, s)
	}
	return appendTextString(b, s)
}

func (l *Line) appendHex(b []byte, id []byte) []byte {
	if l.json {
		b = append(b, '"')
		b = hex.AppendEncode(b, id)
		return append(b, '"')
	}
	return hex.AppendEncode(b, id)
}

// appendRFC3339Millis appends t as slog's text handler does: RFC 3339
// with exactly three digits of milliseconds.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	// RFC3339Nano is the fast layout but trims trailing zeros: a tenth of
	// a millisecond added keeps four digits, and the fourth is dropped.
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...)
}
