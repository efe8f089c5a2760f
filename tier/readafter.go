package tier

import (
	"errors"
	"strconv"
	"strings"
)

// ReadAfterHeader is the response header that hands a client the
// position of its request's last write, and the request header in which
// the client sends it back; ReadAfterCookie carries the same for browsers.
// A request that carries it reads only from a standby that has replayed
// that far, else from the primary: read-your-writes across requests and
// app instances. The app tier sets and reads them (app.ReadAfter); the
// balancer and the web tier pass them on untouched.
const (
	ReadAfterHeader = "Threetier-Read-After"
	ReadAfterCookie = "threetier_read_after"
)

// A Position is a point in the primary database's write history:
// PostgreSQL's WAL location (LSN), written as PostgreSQL writes it,
// "16/B374D848". Zero is no position.
type Position uint64

// String writes p as PostgreSQL does: two hexadecimal halves.
func (p Position) String() string {
	return strconv.FormatUint(uint64(p)>>32, 16) + "/" + strconv.FormatUint(uint64(p)&0xFFFFFFFF, 16)
}

// ErrBadPosition is what ParsePosition answers for text that is not a
// position.
var ErrBadPosition = errors.New("not a database position (hexadecimal HIGH/LOW, as 16/B374D848)")

// ParsePosition reads a position written as PostgreSQL writes an LSN.
func ParsePosition(s string) (Position, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || len(hi) == 0 || len(hi) > 8 || len(lo) == 0 || len(lo) > 8 {
		return 0, ErrBadPosition
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, ErrBadPosition
	}
	return Position(h<<32 | l), nil
}
