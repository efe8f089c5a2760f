package app

import (
	"context"
	"slices"
	"sync"
	"time"
)

// keyLimit caps the calls in flight that name the same key (Call.Keys):
// a bulkhead per key, made when a call first names the key and dropped
// when the last call naming it ends, so that the guard keeps only the
// keys in use.
type keyLimit struct {
	max int

	mu    sync.Mutex
	inUse map[string]*keySlots
}

// keySlots is one key's bulkhead, and how many calls hold or wait for a
// slot of it.
type keySlots struct {
	*bulkhead
	refs int // under keyLimit.mu
}

func newKeyLimit(maxPerKey int) *keyLimit {
	return &keyLimit{max: maxPerKey, inUse: make(map[string]*keySlots)}
}

// acquire takes a slot of every key within wait (and ctx), or none, and
// returns what gives them back. It never holds a key while it waits for
// another one: when it finds a key full it gives back the ones it took,
// waits for that one, then tries the rest again. Calls that name several
// keys then cannot hold each other up, nor hold a key idle that calls for
// it alone could use. A nil keyLimit takes nothing.
func (l *keyLimit) acquire(ctx context.Context, keys []string, wait time.Duration) (release func(), ok bool) {
	if l == nil || len(keys) == 0 {
		return func() {}, true
	}
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	slots := make([]*keySlots, len(keys))
	for i, k := range keys {
		slots[i] = l.ref(k)
	}
	taken := make([]bool, len(slots))
	giveBack := func() {
		for i, s := range slots {
			if taken[i] {
				s.release()
				taken[i] = false
			}
		}
	}
	done := func() {
		giveBack()
		for i, k := range keys {
			l.unref(k, slots[i])
		}
	}
	deadline := time.Now().Add(wait)
	for {
		full := -1
		for i, s := range slots {
			if !taken[i] {
				if !s.tryAcquire() {
					full = i
					break
				}
				taken[i] = true
			}
		}
		if full < 0 {
			return done, true
		}
		giveBack()
		// A key's calls may hold it for as long as a transaction
		// waits for its row: the wait is bounded by time alone.
		left := time.Until(deadline)
		if !slots[full].wait(ctx, left, left) {
			done()
			return nil, false
		}
		taken[full] = true
	}
}

// ref returns key's slots, made if no call holds them, counting one more
// call on them.
func (l *keyLimit) ref(key string) *keySlots {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.inUse[key]
	if s == nil {
		s = &keySlots{bulkhead: newBulkhead(l.max)}
		l.inUse[key] = s
	}
	s.refs++
	return s
}

// unref counts one call less on key's slots, dropped with the last one.
func (l *keyLimit) unref(key string, s *keySlots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.refs--; s.refs == 0 {
		delete(l.inUse, key)
	}
}
