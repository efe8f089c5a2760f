package tier

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

// accessLine writes access lines without slog, byte for byte as the slog
// handler writing to the same output would: slog's JSON handler spends
// most of an access line's cost on generic attribute handling.
type accessLine struct {
	json bool
	// trace adds trace_id and span_id, as TraceHandler does.
	trace bool
	// with holds the logger's With attributes, as its handler formats them.
	with []byte
	// w is shared with the slog handler, and locked: see lockedWriter.
	w    io.Writer
	bufs sync.Pool
}

func newAccessLine(json, trace bool, w io.Writer) *accessLine {
	return &accessLine{json: json, trace: trace, w: w}
}

// withAttrs returns l for a logger given attrs with With.
func (l *accessLine) withAttrs(attrs []slog.Attr) *accessLine {
	return &accessLine{json: l.json, trace: l.trace, with: append(bytes.Clone(l.with), l.format(attrs)...), w: l.w}
}

// format returns attrs as slog's handler appends a logger's With
// attributes to its lines: it has the handler format them on a line with
// nothing else, and cuts them out of it.
func (l *accessLine) format(attrs []slog.Attr) []byte {
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

// write writes the line of an access record. It reports false, having
// written nothing, for a record it cannot write as slog would: one whose
// time slog's JSON handler rejects, or an attribute of another kind than
// those an AccessLog makes.
func (l *accessLine) write(ctx context.Context, at time.Time, level slog.Level, attrs []slog.Attr) bool {
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

func (l *accessLine) appendLine(ctx context.Context, b []byte, at time.Time, level slog.Level, attrs []slog.Attr) ([]byte, bool) {
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
func (l *accessLine) appendKey(b []byte, key string) []byte {
	if l.json {
		b = append(b, ',', '"')
		b = append(b, key...)
		return append(b, '"', ':')
	}
	b = append(b, ' ')
	b = append(b, key...)
	return append(b, '=')
}

func (l *accessLine) appendString(b []byte, s string) []byte {
	if l.json {
		return appendJSONString(b, s)
	}
	return appendTextString(b, s)
}

func (l *accessLine) appendHex(b []byte, id []byte) []byte {
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
