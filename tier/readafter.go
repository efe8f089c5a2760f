package tier

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
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

// A ReadAfter carries one request's read-your-writes positions between the
// tiers, in its context: the position the client says its reads must see,
// and the position of the request's own last commit, which the data tier
// records and the app tier hands back to the client.
type ReadAfter struct {
	after Position
	wrote atomic.Uint64
}

// NewReadAfter starts the positions of a request whose reads must see
// after (zero: the client sent none).
func NewReadAfter(after Position) *ReadAfter { return &ReadAfter{after: after} }

// After is the position the request's reads must see: the client's, or
// the request's own last commit when that is later.
func (r *ReadAfter) After() Position { return max(r.after, Position(r.wrote.Load())) }

// Wrote records a commit of the request at p; the latest one wins.
func (r *ReadAfter) Wrote(p Position) {
	for {
		old := r.wrote.Load()
		if uint64(p) <= old || r.wrote.CompareAndSwap(old, uint64(p)) {
			return
		}
	}
}

// Written is the position of the request's last commit, zero when it
// wrote nothing.
func (r *ReadAfter) Written() Position { return Position(r.wrote.Load()) }

type readAfterKey struct{}

// WithReadAfter returns ctx carrying r.
func WithReadAfter(ctx context.Context, r *ReadAfter) context.Context {
	return context.WithValue(ctx, readAfterKey{}, r)
}

// ReadAfterFrom returns the ReadAfter ctx carries, or nil.
func ReadAfterFrom(ctx context.Context) *ReadAfter {
	if ctx == nil {
		return nil
	}
	r, _ := ctx.Value(readAfterKey{}).(*ReadAfter)
	return r
}
