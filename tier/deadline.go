package tier

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// HeaderTimeout carries a request's deadline from one tier to the next, as
// the time it has left: whole milliseconds followed by "ms" ("4850ms"),
// at most eight digits. A relative budget, as gRPC's grpc-timeout, needs
// no agreement between the clocks of the hosts.
//
// The deadline is set once, at the edge: the front door's
// balancer.ProxyConfig.ResponseTimeout, the web tier's
// web.ForwardConfig.ResponseTimeout.
// Every hop takes the earlier of its own deadline and its arrival plus the
// header (ShortenDeadline), so that a caller can shorten its deadline but
// never extend it, and sends on what is left when the request goes out
// (AppendTimeout), attempt by attempt: the balancer's pools, and the app
// tier, whose request context ends then. A value that does not parse is
// ignored.
const HeaderTimeout = "Threetier-Timeout"

// maxTimeoutDigits bounds a HeaderTimeout value: 99999999ms is more than a
// day, and eight digits cannot overflow.
const maxTimeoutDigits = 8

// maxTimeout is the longest budget a HeaderTimeout value carries.
const maxTimeout = 99999999 * time.Millisecond

// errBadTimeout is wrapped by ParseTimeout's errors.
var errBadTimeout = errors.New("not a " + HeaderTimeout + " value (1 to 8 digits of milliseconds and \"ms\", as 4850ms)")

// ParseTimeout reads a HeaderTimeout value.
func ParseTimeout(v string) (time.Duration, error) {
	digits, ok := strings.CutSuffix(v, "ms")
	if !ok || digits == "" || len(digits) > maxTimeoutDigits {
		return 0, badTimeout(v)
	}
	var ms int64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, badTimeout(v)
		}
		ms = ms*10 + int64(c-'0')
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// badTimeout is errBadTimeout quoting (the start of) the value, which a
// client may have made long.
func badTimeout(v string) error {
	const quoted = 32
	if len(v) > quoted {
		v = v[:quoted] + "..."
	}
	return errors.Join(errBadTimeout, errors.New("got "+strconv.Quote(v)))
}

// AppendTimeout appends d as a HeaderTimeout value: whole milliseconds,
// rounded down so that the next hop is never given more than is left; a
// negative d is 0ms and one over the header's range is its largest value.
func AppendTimeout(dst []byte, d time.Duration) []byte {
	d = min(max(d, 0), maxTimeout)
	dst = strconv.AppendInt(dst, int64(d/time.Millisecond), 10)
	return append(dst, "ms"...)
}

// FormatTimeout is AppendTimeout as a string.
func FormatTimeout(d time.Duration) string {
	var b [16]byte
	return string(AppendTimeout(b[:0], d))
}

// ShortenDeadline returns the deadline of a request that arrived at start
// with HeaderTimeout value v: the earlier of deadline (zero for none) and
// start plus v. A value that does not parse leaves deadline as it is, and
// is returned as an error for the caller to log.
func ShortenDeadline(deadline, start time.Time, v string) (time.Time, error) {
	d, err := ParseTimeout(v)
	if err != nil {
		return deadline, err
	}
	if t := start.Add(d); deadline.IsZero() || t.Before(deadline) {
		return t, nil
	}
	return deadline, nil
}
