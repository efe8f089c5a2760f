// Package accesslog is the access log of every tier: one line per
// answered request, configured by a tier.AccessLogConfig. On a logger made
// by tier.NewLogger it writes its lines with that logger's encoder
// (internal/logline), byte for byte as slog would.
package accesslog

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/internal/logline"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// Log writes one line per answered request. Answers of 5xx log at warn,
// quiet ones (probes, scrapes) at debug, the rest at info; the request ID
// comes from the request's context. A nil *Log logs nothing.
type Log struct {
	log *slog.Logger
	// line writes the lines in place of log's handler when set.
	line   *logline.Line
	fields tier.AccessFields
	// names are the fields' names, by bit.
	names []string
}

// New returns the access log cfg describes; log is the tier's logger, used
// by tier.AccessLogLogger. It returns nil for tier.AccessLogOff.
func New(cfg tier.AccessLogConfig, log *slog.Logger) (*Log, error) {
	out := cfg.Output
	if out == nil {
		out = os.Stderr
	}
	var line *logline.Line
	switch cfg.Format {
	case tier.AccessLogOff:
		return nil, nil
	case tier.AccessLogLogger:
		log = obs.Logger(log)
		if h, ok := log.Handler().(logline.Handler); ok {
			line = h.Access
		}
	case tier.AccessLogJSON:
		lw := logline.NewLockedWriter(out)
		log, line = slog.New(slog.NewJSONHandler(lw, nil)), logline.NewLine(true, false, lw)
	case tier.AccessLogText:
		lw := logline.NewLockedWriter(out)
		log, line = slog.New(slog.NewTextHandler(lw, nil)), logline.NewLine(false, false, lw)
	default:
		return nil, &tier.ConfigError{Var: "AccessLog.Format", Value: string(cfg.Format), Problem: "unknown access log format", Allowed: "json, text, off"}
	}
	fields := cfg.Fields
	if fields == 0 {
		fields = tier.DefaultAccessFields
	}
	return &Log{log: log, line: line, fields: fields, names: fieldNames()}, nil
}

// fieldNames are the names of tier's access fields, by bit.
func fieldNames() []string {
	var names []string
	for f := tier.AccessFields(1); f != 0; f <<= 1 {
		name := f.String()
		if name == "" {
			break
		}
		names = append(names, name)
	}
	return names
}

// Entry describes one answered request.
type Entry struct {
	// Request is the request answered. A server without *http.Request
	// leaves it nil and describes the request with Context and Method to
	// UserAgent instead.
	Request *http.Request
	// Context carries the request ID when Request is nil.
	Context context.Context
	// RequestID is the request's ID, when the context does not carry it:
	// a server that has it at hand saves a context.
	RequestID string
	// Method, Host, URI (as the client sent it), Path, Proto and UserAgent
	// describe the request when Request is nil.
	Method, Host, URI, Path, Proto, UserAgent string
	// Remote is the client's address; Request.RemoteAddr when empty.
	Remote string
	// Route is the route pattern that matched, Pool the pool that served.
	Route, Pool string
	Status      int
	Bytes       int64
	Duration    time.Duration
	// Time is when the request was answered, the line's time; the time
	// of the call to Log when zero. A caller that has just read the clock
	// for Duration saves a read.
	Time time.Time
	// Quiet lowers the line to debug: probes and scrapes.
	Quiet bool
}

// Enabled reports whether the line of a request answered with status, in
// ctx, would be written: a caller can skip making its entry when not.
func (a *Log) Enabled(ctx context.Context, status int, quiet bool) bool {
	return a != nil && a.log.Enabled(ctx, accessLevel(status, quiet))
}

// accessLevel is the level of an access line.
func accessLevel(status int, quiet bool) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelWarn
	case quiet:
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Log writes e's line, if its level is enabled.
func (a *Log) Log(e *Entry) {
	if a == nil {
		return
	}
	ctx, method, host, uri, path, proto, agent, remote := e.Context, e.Method, e.Host, e.URI, e.Path, e.Proto, e.UserAgent, e.Remote
	if r := e.Request; r != nil {
		ctx, method, host, uri, path, proto, agent = r.Context(), r.Method, r.Host, r.RequestURI, r.URL.Path, r.Proto, r.UserAgent()
		if remote == "" {
			remote = r.RemoteAddr
		}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	level := accessLevel(e.Status, e.Quiet)
	if !a.log.Enabled(ctx, level) {
		return
	}
	var buf [16 + 1]slog.Attr // every field, and the request ID
	attrs := buf[:0]
	str := func(f tier.AccessFields, v string) {
		if a.fields&f != 0 && v != "" {
			attrs = append(attrs, slog.String(a.names[bitIndex(f)], v))
		}
	}
	str(tier.AccessRemote, remote)
	str(tier.AccessMethod, method)
	str(tier.AccessHost, host)
	str(tier.AccessURI, uri)
	str(tier.AccessPath, path)
	str(tier.AccessRoute, e.Route)
	str(tier.AccessPool, e.Pool)
	str(tier.AccessProto, proto)
	if a.fields&tier.AccessStatus != 0 {
		attrs = append(attrs, slog.Int("status", e.Status))
	}
	if a.fields&tier.AccessBytes != 0 {
		attrs = append(attrs, slog.Int64("bytes", e.Bytes))
	}
	if a.fields&tier.AccessDuration != 0 {
		attrs = append(attrs, slog.Duration("duration", e.Duration))
	}
	str(tier.AccessUserAgent, agent)
	// The line carries the request ID itself rather than leaving it to
	// the logger's handler (which then adds none): past five attributes a
	// record allocates for the rest, and once more for one added later.
	id := e.RequestID
	if id == "" {
		id = httpx.RequestID(ctx)
	}
	if id != "" {
		attrs = append(attrs, slog.String(logline.RequestIDAttr, id))
	}
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	if a.line != nil && a.line.Write(ctx, at, level, attrs) {
		return
	}
	// The record is made here rather than by Logger.LogAttrs, which looks
	// up its caller's frame on every call: the line has no use for it.
	rec := slog.NewRecord(at, level, "access", 0)
	rec.AddAttrs(attrs...)
	_ = a.log.Handler().Handle(ctx, rec)
}

// bitIndex is the position of f's one bit.
func bitIndex(f tier.AccessFields) int {
	i := 0
	for f > 1 {
		f >>= 1
		i++
	}
	return i
}
