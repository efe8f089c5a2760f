package tier

import (
	"fmt"
	"io"
	"strings"
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

// AccessLogConfig configures a tier's access log: one line per answered
// request. Answers of 5xx log at warn, quiet ones (probes, scrapes) at
// debug, the rest at info, each with the request's ID.
type AccessLogConfig struct {
	// Format is where and how lines go: the tier's logger (the default),
	// JSON or text lines on Output, or off.
	Format AccessLogFormat
	// Fields are the fields of a line; DefaultAccessFields when zero.
	Fields AccessFields
	// Output receives JSON and text lines; os.Stderr when nil.
	Output io.Writer
}

// String lists the fields of f by name, comma-separated, as
// ParseAccessFields reads them.
func (f AccessFields) String() string {
	var names []string
	for i, name := range accessFieldNames {
		if f&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return strings.Join(names, ",")
}
