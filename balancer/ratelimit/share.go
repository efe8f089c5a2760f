package ratelimit

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Block is a key refused until a time.
type Block struct {
	Key string `json:"key"`
	// Until is when the block ends; zero for never.
	Until time.Time `json:"until,omitzero"`
}

// BlockChange is a block made (Until in the future, or zero with Forever)
// or lifted (Lifted), for peers.
type BlockChange struct {
	Key     string
	Until   time.Time
	Forever bool
	Lifted  bool
}

// maxChanges bounds the block changes waiting for TakeBlockChanges: an
// operator scripting blocks faster than a cluster sends them loses the
// oldest from the exchange (peers still get them on push/pull).
const maxChanges = 10_000

// Block refuses key's requests and connections until until (zero: until
// Unblock) and queues the change for the cluster.
func (l *Limiter) Block(key string, until time.Time) {
	key = NormalizeKey(key)
	l.setBlock(key, until, false)
	l.changeMu.Lock()
	if len(l.changes) >= maxChanges {
		l.changes = slices.Delete(l.changes, 0, len(l.changes)-maxChanges+1)
	}
	l.changes = append(l.changes, BlockChange{Key: key, Until: until, Forever: until.IsZero()})
	l.changeMu.Unlock()
}

// Unblock lifts key's block and queues the change for the cluster.
func (l *Limiter) Unblock(key string) {
	key = NormalizeKey(key)
	l.setBlock(key, time.Time{}, true)
	l.changeMu.Lock()
	l.changes = append(l.changes, BlockChange{Key: key, Lifted: true})
	l.changeMu.Unlock()
}

// ApplyBlock applies a peer's block change, without queueing it again.
func (l *Limiter) ApplyBlock(c BlockChange) {
	if c.Key == "" || len(c.Key) > MaxKeyLen+8 {
		return
	}
	if !c.Lifted && !c.Forever && c.Until.IsZero() {
		return // an ended block
	}
	l.setBlock(c.Key, c.Until, c.Lifted)
}

func (l *Limiter) setBlock(key string, until time.Time, lift bool) {
	s := l.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, had := s.blocks[key]
	if lift {
		if had {
			delete(s.blocks, key)
			s.blocked.Add(-1)
		}
		return
	}
	var n int64
	if !until.IsZero() {
		n = until.UnixNano()
	}
	s.blocks[key] = n
	if !had {
		s.blocked.Add(1)
	}
}

// HasBlocks reports whether any key is blocked, at the cost of an atomic
// load: callers with no rate limit skip the table while it is false.
func (l *Limiter) HasBlocks() bool { return l.blocked.Load() > 0 }

// TakeBlockChanges returns the blocks made and lifted here since the last
// call.
func (l *Limiter) TakeBlockChanges() []BlockChange {
	l.changeMu.Lock()
	defer l.changeMu.Unlock()
	c := l.changes
	l.changes = nil
	return c
}

// Blocks returns the blocks in force, by key.
func (l *Limiter) Blocks(now time.Time) []Block {
	n := now.UnixNano()
	var out []Block
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, until := range s.blocks {
			switch {
			case until == 0:
				out = append(out, Block{Key: k})
			case until > n:
				out = append(out, Block{Key: k, Until: time.Unix(0, until)})
			default:
				delete(s.blocks, k)
				s.blocked.Add(-1)
			}
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Block) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Delta is the requests one node accepted for one key since it last sent.
type Delta struct {
	Key   string
	Count uint32
}

// Share turns on (or off) the counts of accepted requests per key that
// TakeDeltas takes: a cluster turns them on while it runs, so that a
// limiter nobody shares keeps none. Off forgets the counts not taken.
func (l *Limiter) Share(on bool) {
	l.sharing.Store(on)
	if on {
		return
	}
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for _, e := range s.dirty {
			e.dirty, e.pending = false, 0
		}
		clear(s.dirty)
		s.dirty = s.dirty[:0]
		s.mu.Unlock()
	}
}

// TakeDeltas appends to buf, and forgets, the requests accepted per key
// since the last call, while shared (Share): at most max keys, those of
// the most requests, the others' counts dropped (under a flood of keys,
// the light ones matter least to peers).
func (l *Limiter) TakeDeltas(buf []Delta, max int) []Delta {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for _, e := range s.dirty {
			e.dirty = false
			if e.pending > 0 {
				buf = append(buf, Delta{Key: l.wireKey(e), Count: e.pending})
				e.pending = 0
			}
		}
		clear(s.dirty)
		s.dirty = s.dirty[:0]
		s.mu.Unlock()
	}
	if len(buf) > max {
		slices.SortFunc(buf, func(a, b Delta) int { return cmp.Compare(b.Count, a.Count) })
		buf = buf[:max]
	}
	return buf
}

// ApplyDeltas takes the tokens a peer's accepted requests used from the
// same keys here. A bucket may go into debt down to minus its burst: a
// client that spent the burst on two nodes at once waits for both.
func (l *Limiter) ApplyDeltas(ds []Delta, now time.Time) {
	n := now.UnixNano()
	for _, d := range ds {
		i, key, ok := l.parseWireKey(d.Key)
		if !ok || d.Count == 0 {
			continue
		}
		s := l.shardOf(key)
		s.mu.Lock()
		e := s.keys[slot{i, key}]
		if e == nil {
			e = l.addLocked(s, i, key, n)
		}
		l.refill(e, n)
		e.tokens = max(-l.policies[i].burst, e.tokens-float64(d.Count))
		s.mu.Unlock()
	}
}

// wireKey is e's key as peers know it: the key itself under the Config's
// own limit, else NUL, the policy's name, NUL and the key (NormalizeKey
// leaves no key starting with NUL).
func (l *Limiter) wireKey(e *entry) string {
	if e.policy == 0 {
		return e.key
	}
	return "\x00" + l.policies[e.policy].name + "\x00" + e.key
}

// parseWireKey reads a peer's key: the policy's index and the key; not ok
// for a key out of bounds, or of a policy this node has no rate for.
func (l *Limiter) parseWireKey(k string) (int, string, bool) {
	if k == "" || len(k) > maxWireKey {
		return 0, "", false
	}
	i := 0
	if k[0] == 0 {
		name, key, found := strings.Cut(k[1:], "\x00")
		idx, known := l.byName[name]
		if !found || !known {
			return 0, "", false
		}
		i, k = idx, key
	}
	if k == "" || len(k) > MaxKeyLen+8 || l.policies[i].rate <= 0 {
		return 0, "", false
	}
	return i, k, true
}

// Level is how far below full one key's bucket is.
type Level struct {
	Key  string
	Used float64
}

// Levels returns the keys whose buckets are at least one token below
// full, the emptiest first, at most max: what a node that (re)starts
// takes from its peers.
func (l *Limiter) Levels(now time.Time, max int) []Level {
	if max <= 0 {
		return nil
	}
	n := now.UnixNano()
	var out []Level
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for _, e := range s.keys {
			if l.policies[e.policy].rate <= 0 {
				continue
			}
			l.refill(e, n)
			if used := l.policies[e.policy].burst - e.tokens; used >= 1 {
				out = append(out, Level{Key: l.wireKey(e), Used: used})
			}
		}
		s.mu.Unlock()
		if len(out) > 2*max {
			out = emptiest(out, max)
		}
	}
	return emptiest(out, max)
}

func emptiest(ls []Level, n int) []Level {
	slices.SortFunc(ls, func(a, b Level) int { return cmp.Compare(b.Used, a.Used) })
	return ls[:min(n, len(ls))]
}

// MergeLevels lowers each key's bucket to a peer's level where the peer's
// is lower; merging the same levels twice changes nothing.
func (l *Limiter) MergeLevels(ls []Level, now time.Time) {
	n := now.UnixNano()
	for _, lv := range ls {
		i, key, ok := l.parseWireKey(lv.Key)
		if !ok || !(lv.Used > 0) {
			continue
		}
		s := l.shardOf(key)
		s.mu.Lock()
		e := s.keys[slot{i, key}]
		if e == nil {
			e = l.addLocked(s, i, key, n)
		}
		l.refill(e, n)
		burst := l.policies[i].burst
		e.tokens = max(-burst, min(e.tokens, burst-lv.Used))
		s.mu.Unlock()
	}
}
