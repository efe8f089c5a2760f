package tier

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/threetier/threetier/internal/obs"
)

// AccessLogFormat chooses how access lines are written.
type AccessLogFormat string

const (
	// AccessLogLogger writes access lines through the tier's own logger,
	// in its format and level; it is the default.
	AccessLogLogger AccessLogFormat = ""
	// AccessLogJSON writes JSON lines to AccessLogConfig.Output.
	AccessLogJSON AccessLogFormat = "json"
	// AccessLogText writes logfmt lines to AccessLogConfig.Output.
	AccessLogText AccessLogFormat = "text"
	// AccessLogOff writes no access lines; error logs are not affected.
	AccessLogOff AccessLogFormat = "off"
)

// AccessFields is a set of the fields of an access line.
type AccessFields uint16

// The fields of an access line; each is logged under the name in
// accessFieldNames. A field with no value (no route, no pool) is left out.
const (
	AccessRemote AccessFields = 1 << iota
	AccessMethod
	AccessHost
	AccessURI
	AccessPath
	AccessRoute
	AccessPool
	AccessProto
	AccessStatus
	AccessBytes
	AccessDuration
	AccessUserAgent
)

// DefaultAccessFields are the fields logged unless others are chosen.
const DefaultAccessFields = AccessRemote | AccessMethod | AccessURI | AccessRoute | AccessPool |
	AccessStatus | AccessBytes | AccessDuration | AccessUserAgent

var accessFieldNames = [...]string{"remote", "method", "host", "uri", "path", "route", "pool", "proto", "status", "bytes", "duration", "user_agent"}

// ParseAccessFields reads a comma-separated list of field names, such as
// "method,path,status,duration".
func ParseAccessFields(s string) (AccessFields, error) {
	var f AccessFields
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		i := indexOf(accessFieldNames[:], name)
		if i < 0 {
			return 0, fmt.Errorf("unknown access log field %q (known: %s)", name, strings.Join(accessFieldNames[:], ", "))
		}
		f |= 1 << i
	}
	return f, nil
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// AccessLogConfig configures an AccessLog.
type AccessLogConfig struct {
	// Format is where and how lines go: the tier's logger (the default),
	// JSON or text lines on Output, or off.
	Format AccessLogFormat
	// Fields are the fields of a line; DefaultAccessFields when zero.
	Fields AccessFields
	// Output receives JSON and text lines; os.Stderr when nil.
	Output io.Writer
}

// AccessLog writes one line per answered request. Answers of 5xx log at
// warn, quiet ones (probes, scrapes) at debug, the rest at info; the
// request ID comes from the request's context. A nil *AccessLog logs
// nothing.
type AccessLog struct {
	log *slog.Logger
	// line writes the lines in place of log's handler when set.
	line   *accessLine
	fields AccessFields
}

// NewAccessLog returns the access log cfg describes; log is the tier's
// logger, used by AccessLogLogger. It returns nil for AccessLogOff.
func NewAccessLog(cfg AccessLogConfig, log *slog.Logger) (*AccessLog, error) {
	out := cfg.Output
	if out == nil {
		out = os.Stderr
	}
	var line *accessLine
	switch cfg.Format {
	case AccessLogOff:
		return nil, nil
	case AccessLogLogger:
		log = obs.Logger(log)
		if h, ok := log.Handler().(loggerHandler); ok {
			line = h.access
		}
	case AccessLogJSON:
		lw := &lockedWriter{w: out}
		log, line = slog.New(slog.NewJSONHandler(lw, nil)), newAccessLine(true, false, lw)
	case AccessLogText:
		lw := &lockedWriter{w: out}
		log, line = slog.New(slog.NewTextHandler(lw, nil)), newAccessLine(false, false, lw)
	default:
		return nil, &ConfigError{Var: "AccessLog.Format", Value: string(cfg.Format), Problem: "unknown access log format", Allowed: "json, text, off"}
	}
	fields := cfg.Fields
	if fields == 0 {
		fields = DefaultAccessFields
	}
	return &AccessLog{log: log, line: line, fields: fields}, nil
}

// AccessEntry describes one answered request.
type AccessEntry struct {
	// Request is the request answered. A server without *http.Request
	// leaves it nil and describes the request with Context and Method to
	// UserAgent instead.
	Request *http.Request
	// Context carries the request ID when Request is nil.
	Context context.Context
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
func (a *AccessLog) Enabled(ctx context.Context, status int, quiet bool) bool {
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
func (a *AccessLog) Log(e *AccessEntry) {
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
	var buf [len(accessFieldNames) + 1]slog.Attr
	attrs := buf[:0]
	str := func(f AccessFields, v string) {
		if a.fields&f != 0 && v != "" {
			attrs = append(attrs, slog.String(accessFieldNames[bitIndex(f)], v))
		}
	}
	str(AccessRemote, remote)
	str(AccessMethod, method)
	str(AccessHost, host)
	str(AccessURI, uri)
	str(AccessPath, path)
	str(AccessRoute, e.Route)
	str(AccessPool, e.Pool)
	str(AccessProto, proto)
	if a.fields&AccessStatus != 0 {
		attrs = append(attrs, slog.Int("status", e.Status))
	}
	if a.fields&AccessBytes != 0 {
		attrs = append(attrs, slog.Int64("bytes", e.Bytes))
	}
	if a.fields&AccessDuration != 0 {
		attrs = append(attrs, slog.Duration("duration", e.Duration))
	}
	str(AccessUserAgent, agent)
	// The line carries the request ID itself rather than leaving it to
	// RequestIDHandler (which then adds none): past five attributes a
	// record allocates for the rest, and once more for one added later.
	if id := RequestID(ctx); id != "" {
		attrs = append(attrs, slog.String(requestIDAttr, id))
	}
	at := e.Time
	if at.IsZero() {
		at = time.Now()
	}
	if a.line != nil && a.line.write(ctx, at, level, attrs) {
		return
	}
	// The record is made here rather than by Logger.LogAttrs, which looks
	// up its caller's frame on every call: the line has no use for it.
	rec := slog.NewRecord(at, level, "access", 0)
	rec.AddAttrs(attrs...)
	_ = a.log.Handler().Handle(ctx, rec)
}

// bitIndex is the position of f's one bit.
func bitIndex(f AccessFields) int {
	i := 0
	for f > 1 {
		f >>= 1
		i++
	}
	return i
}
