package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/threetier/threetier/balancer/ratelimit"
)

// A node with a rate limiter (WithRateLimiter) shares it with its peers:
// every limitSyncInterval it sends each live peer the requests it accepted
// per client key since the last time, which the peer takes from the same
// keys' buckets, and the blocks made or lifted here, which the peer
// applies. Deltas go once, straight to each peer (a repeat would count
// twice); blocks, which repeat harmlessly, also go by gossip in case a
// packet is lost. A node's whole state (the emptiest buckets, the blocks)
// travels with the push/pull of a join, so that a node that (re)starts
// limits the clients its peers limit.

const (
	// limitSyncInterval is how often deltas go out: a client alternating
	// between nodes gets at most this long of one node's tokens unseen by
	// the other.
	limitSyncInterval = 100 * time.Millisecond
	// limitMsgSize bounds one message, under memberlist's UDP packet with
	// room for its encryption and headers.
	limitMsgSize = 1000
	// maxDeltaKeys bounds the keys sent per interval; the rest go in the
	// next ones. A flood of distinct keys costs at most this many entries
	// (some 40 packets per peer) a tenth of a second.
	maxDeltaKeys = 4096
	// maxStateKeys bounds the levels and blocks in a push/pull.
	maxStateKeys = 10_000
)

// User messages of the rate limits (see msgReport).
const (
	msgRateDeltas byte = 3 // ratelimit.EncodeDeltas
	msgRateBlocks byte = 4 // ratelimit.EncodeBlocks
)

// wireLimits is the rate limiter's part of a node's push/pull state.
type wireLimits struct {
	Levels []byte `json:"l,omitempty"` // ratelimit.EncodeLevels
	Blocks []byte `json:"b,omitempty"` // ratelimit.EncodeBlocks
}

// limitLoop sends the limiter's deltas and block changes to the peers
// every limitSyncInterval until ctx ends.
func (c *Cluster) limitLoop(ctx context.Context, r *clusterRun) {
	c.limiter.Share(true)
	defer c.limiter.Share(false)
	t := time.NewTicker(limitSyncInterval)
	defer t.Stop()
	var buf []ratelimit.Delta
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		buf = c.limiter.TakeDeltas(buf[:0], maxDeltaKeys)
		changes := c.limiter.TakeBlockChanges()
		if len(buf) == 0 && len(changes) == 0 {
			continue
		}
		now := time.Now()
		msgs := ratelimit.EncodeDeltas([]byte{msgRateDeltas}, buf, limitMsgSize)
		blocks := ratelimit.EncodeBlocks([]byte{msgRateBlocks}, changes, now, limitMsgSize)
		for _, b := range blocks {
			r.queue.QueueBroadcast(&blockBroadcast{msg: b})
		}
		msgs = append(msgs, blocks...)
		self := r.ml.LocalNode().Name
		for _, m := range r.ml.Members() {
			if m.Name == self {
				continue
			}
			for _, msg := range msgs {
				if err := r.ml.SendBestEffort(m, msg); err != nil {
					c.log.Debug("cluster: rate limit counts not sent", "to", m.Name, "err", err)
					break
				}
			}
		}
	}
}

// blockBroadcast is a block change in memberlist's gossip queue.
type blockBroadcast struct{ msg []byte }

func (b *blockBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *blockBroadcast) Message() []byte                       { return b.msg }
func (b *blockBroadcast) Finished()                             {}

// receiveLimits applies a peer's rate limit message; it reports whether b
// was one.
func (c *Cluster) receiveLimits(b []byte) bool {
	switch b[0] {
	case msgRateDeltas:
		if c.limiter == nil {
			return true
		}
		ds, err := ratelimit.DecodeDeltas(b[1:])
		if err != nil {
			c.log.Debug("cluster: bad rate limit counts", "err", err)
		}
		c.limiter.ApplyDeltas(ds, time.Now())
		return true
	case msgRateBlocks:
		if c.limiter == nil {
			return true
		}
		cs, err := ratelimit.DecodeBlocks(b[1:], time.Now())
		if err != nil {
			c.log.Debug("cluster: bad blocks", "err", err)
		}
		for _, ch := range cs {
			c.limiter.ApplyBlock(ch)
		}
		return true
	}
	return false
}

// localLimits is the limiter's part of this node's push/pull state.
func (c *Cluster) localLimits() *wireLimits {
	if c.limiter == nil {
		return nil
	}
	now := time.Now()
	w := &wireLimits{Levels: ratelimit.EncodeLevels(c.limiter.Levels(now, maxStateKeys))}
	blocks := c.limiter.Blocks(now)
	changes := make([]ratelimit.BlockChange, 0, min(len(blocks), maxStateKeys))
	for _, b := range blocks[:min(len(blocks), maxStateKeys)] {
		changes = append(changes, ratelimit.BlockChange{Key: b.Key, Until: b.Until, Forever: b.Until.IsZero()})
	}
	if msgs := ratelimit.EncodeBlocks(nil, changes, now, 1<<30); len(msgs) > 0 {
		w.Blocks = msgs[0]
	}
	return w
}

// mergeLimits takes a peer's push/pull state of the limiter.
func (c *Cluster) mergeLimits(w *wireLimits) {
	if c.limiter == nil || w == nil {
		return
	}
	now := time.Now()
	if ls, err := ratelimit.DecodeLevels(w.Levels); err == nil {
		c.limiter.MergeLevels(ls, now)
	}
	if cs, err := ratelimit.DecodeBlocks(w.Blocks, now); err == nil {
		for _, ch := range cs {
			c.limiter.ApplyBlock(ch)
		}
	}
}
