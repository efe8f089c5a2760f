// Package readafter carries a request's read-your-writes positions in its
// context, from the app tier, which reads the client's position
// (tier.ReadAfterHeader, tier.ReadAfterCookie) and hands back the
// request's own, to the data tier, which reads from a standby that has
// replayed that far and records each commit's position.
package readafter

import (
	"context"
	"sync/atomic"

	"github.com/threetier/threetier/tier"
)

// Positions are one request's read-your-writes positions, carried between
// the tiers in its context: the position the client says its reads must see,
// and the position of the request's own last commit, which the data tier
// records and the app tier hands back to the client.
type Positions struct {
	after tier.Position
	wrote atomic.Uint64
}

// New starts the positions of a request whose reads must see after
// (zero: the client sent none).
func New(after tier.Position) *Positions { return &Positions{after: after} }

// After is the position the request's reads must see: the client's, or
// the request's own last commit when that is later.
func (r *Positions) After() tier.Position { return max(r.after, tier.Position(r.wrote.Load())) }

// Wrote records a commit of the request at p; the latest one wins.
func (r *Positions) Wrote(p tier.Position) {
	for {
		old := r.wrote.Load()
		if uint64(p) <= old || r.wrote.CompareAndSwap(old, uint64(p)) {
			return
		}
	}
}

// Written is the position of the request's last commit, zero when it
// wrote nothing.
func (r *Positions) Written() tier.Position { return tier.Position(r.wrote.Load()) }

type readAfterKey struct{}

// With returns ctx carrying r.
func With(ctx context.Context, r *Positions) context.Context {
	return context.WithValue(ctx, readAfterKey{}, r)
}

// From returns the Positions ctx carries, or nil.
func From(ctx context.Context) *Positions {
	if ctx == nil {
		return nil
	}
	r, _ := ctx.Value(readAfterKey{}).(*Positions)
	return r
}
