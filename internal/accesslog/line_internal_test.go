package accesslog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
	"go.opentelemetry.io/otel/trace"
)

// oddStrings are values an access line must escape as slog does.
var oddStrings = []string{
	"/plain?a=1&b=2",
	`/q"uote\back\slash`,
	"/ctl\x00\x01\x1f\t\n\r\x7f",
	"/bad\xff\xfeutf8\xc3",
	"/unicode/é/世界/🙂",
	"/sep\u2028\u2029",
	"/space and=equals",
	"/nbsp\u00a0zw\u200bsp",
	`/<html>&'`,
	"",
}

var accessTimes = []time.Time{
	time.Date(2024, 3, 9, 7, 5, 3, 120456789, time.UTC),
	time.Date(2024, 12, 31, 23, 59, 59, 0, time.FixedZone("", 5*3600+30*60)),
	time.Date(1999, 1, 2, 3, 4, 5, 7000000, time.FixedZone("", -8*3600)),
}

func accessEntries() []*Entry {
	var es []*Entry
	for i, s := range oddStrings {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RequestURI = s
		r.URL.Path = s
		r.Host = "example.com"
		r.Header.Set("User-Agent", oddStrings[(i+3)%len(oddStrings)])
		es = append(es, &Entry{
			Request: r, Remote: s, Route: "/items/:id", Pool: oddStrings[(i+1)%len(oddStrings)],
			Status: []int{200, 404, 503}[i%3], Bytes: int64(i * 1000), Duration: time.Duration(i) * 1234567 * time.Nanosecond,
			Time: accessTimes[i%len(accessTimes)], Quiet: i%4 == 1,
		})
	}
	return es
}

func accessContexts() map[string]context.Context {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	bg := context.Background()
	return map[string]context.Context{
		"bare":       bg,
		"request ID": httpx.WithRequestID(bg, "req-\"42\""),
		"span":       trace.ContextWithSpanContext(bg, sc),
		"both":       trace.ContextWithSpanContext(httpx.WithRequestID(bg, "req-7"), sc),
	}
}

// accessLogs are the access logs whose lines the encoder writes, each
// writing into the returned buffer.
func accessLogs(t *testing.T, fields tier.AccessFields) map[string]func(io.Writer) *Log {
	fromLogger := func(format string, with func(*slog.Logger) *slog.Logger) func(io.Writer) *Log {
		return func(w io.Writer) *Log {
			log, err := tier.NewLogger(tier.LogConfig{Level: "debug", Format: format}, w)
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(tier.AccessLogConfig{Fields: fields}, with(log))
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	explicit := func(f tier.AccessLogFormat) func(io.Writer) *Log {
		return func(w io.Writer) *Log {
			a, err := New(tier.AccessLogConfig{Format: f, Fields: fields, Output: w}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	same := func(l *slog.Logger) *slog.Logger { return l }
	with := func(l *slog.Logger) *slog.Logger {
		return l.With("instance", "api 1", "n", 3).With(slog.Group("build", "rev", `a"b`), "empty", slog.GroupValue()).With("t", time.Second)
	}
	return map[string]func(io.Writer) *Log{
		"logger json": fromLogger("json", same), "logger text": fromLogger("text", same),
		"logger json with": fromLogger("json", with), "logger text with": fromLogger("text", with),
		"json": explicit(tier.AccessLogJSON), "text": explicit(tier.AccessLogText),
	}
}

func TestAccessLineWritesAsSlog(t *testing.T) {
	for _, fields := range []tier.AccessFields{tier.DefaultAccessFields, tier.AccessFields(1<<len(fieldNames()) - 1)} {
		for name, newLog := range accessLogs(t, fields) {
			var fast, slow bytes.Buffer
			a := newLog(&fast)
			if a.line == nil {
				t.Fatalf("%s: no access line encoder", name)
			}
			viaSlog := *newLog(&slow)
			viaSlog.line = nil
			for ctxName, ctx := range accessContexts() {
				for _, e := range accessEntries() {
					e.Request = e.Request.WithContext(ctx)
					fast.Reset()
					slow.Reset()
					a.Log(e)
					viaSlog.Log(e)
					if fast.String() != slow.String() {
						t.Errorf("%s, %s, fields %b:\nencoder %q\nslog    %q", name, ctxName, fields, fast.String(), slow.String())
					}
				}
			}
		}
	}
}

func TestAccessLineLeavesGroupsToSlog(t *testing.T) {
	var buf bytes.Buffer
	log, err := tier.NewLogger(tier.LogConfig{Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(tier.AccessLogConfig{}, log.WithGroup("http"))
	if err != nil {
		t.Fatal(err)
	}
	if a.line != nil {
		t.Fatal("the encoder writes for a logger with a group")
	}
	a.Log(accessEntries()[0])
	if !strings.Contains(buf.String(), `"http":{"remote":`) {
		t.Fatalf("line without its group: %s", buf.String())
	}
}

// lineWriter records Writes and fails on one that is not a whole line; it
// takes no lock, so that -race catches Writes that are not serialized.
type lineWriter struct {
	t     *testing.T
	lines []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, '\n') != len(p)-1 {
		w.t.Errorf("write of not one line: %q", p)
	}
	w.lines = append(w.lines, string(p))
	return len(p), nil
}

func TestAccessLinesAndLogLinesDoNotInterleave(t *testing.T) {
	w := &lineWriter{t: t}
	log, err := tier.NewLogger(tier.LogConfig{Format: "json"}, w)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(tier.AccessLogConfig{}, log.With("instance", "a"))
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 16, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			entries := accessEntries()
			for i := range each {
				if g%2 == 0 {
					e := *entries[i%len(entries)]
					e.Status, e.Quiet = 200, false
					a.Log(&e)
				} else {
					log.Info("work", "g", g, "i", i)
				}
			}
		})
	}
	wg.Wait()
	if len(w.lines) != goroutines*each {
		t.Fatalf("%d lines, want %d", len(w.lines), goroutines*each)
	}
	for _, l := range w.lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %q", err, l)
		}
	}
}

func BenchmarkAccessLine(b *testing.B) {
	for _, format := range []string{"json", "text"} {
		log, err := tier.NewLogger(tier.LogConfig{Format: format}, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		a, err := New(tier.AccessLogConfig{}, log)
		if err != nil {
			b.Fatal(err)
		}
		viaSlog := *a
		viaSlog.line = nil
		e := accessEntries()[0]
		e.Request = e.Request.WithContext(httpx.WithRequestID(context.Background(), "req-1"))
		for name, a := range map[string]*Log{"encoder": a, "slog": &viaSlog} {
			b.Run(fmt.Sprintf("%s-%s", format, name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					a.Log(e)
				}
			})
		}
	}
}
