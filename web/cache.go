package web

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stamp identifies one version of a file on disk: a change of size, mtime
// or inode means the cached copy is stale.
type stamp struct {
	size    int64
	modTime time.Time
	ino     uint64
}

// rep is a precompressed sidecar of a file.
type rep struct {
	etag string
	size int64
	// hdrETag and hdrLength are ready-made header values, shared by every
	// response: building them per request costs more than the rest of the
	// handler. They are never modified.
	hdrETag, hdrLength []string
	content            []byte // nil: read from file
	file               string // the sidecar file
}

// entry is what the handler knows of one path. It is immutable once in the
// cache, except for the bookkeeping atomics.
type entry struct {
	name    string
	isDir   bool
	stamp   stamp
	etag    string
	ctype   string
	content []byte // nil: too large to keep, sent from disk
	// reps holds the compressed representations available, by encoding.
	reps [numEncodings]*rep
	// sidecars are the stamps of the sidecar files seen at load, zero when
	// absent, so that a sidecar added or changed is noticed.
	sidecars [numEncodings]stamp
	// unhashed: a part too large to hash when loaded awaits its hash
	// (hashing.go): without it the file has no ETag, a sidecar is not
	// offered.
	unhashed bool
	// compress: compressible; the codings without a sidecar are made on
	// demand (variants.go).
	compress bool
	// variantETags are, by encoding, the ETags of the forms made on
	// demand, and their keys in the variant cache: a new version of the
	// file (a new content hash) never finds the forms of an old one.
	variantETags [numEncodings]string
	// Ready-made header values (see rep); hdrLastMod is nil without a
	// modification time, hdrCacheControl without a matching rule.
	hdrETag, hdrLastMod, hdrType, hdrLength, hdrCacheControl []string

	// fds are the open descriptors of a file sent from disk.
	fds descriptors

	checked atomic.Int64 // unix nanoseconds of the last check on disk
	ref     atomic.Bool  // used since the clock hand last passed
	slot    int          // index in cache.ring, guarded by cache.mu
	cost    int64
}

// negotiable reports whether the response depends on Accept-Encoding.
func (e *entry) negotiable() bool {
	if e.compress {
		return true
	}
	for _, r := range e.reps {
		if r != nil {
			return true
		}
	}
	return false
}

func (e *entry) avail() (a [numEncodings]bool) {
	for i, r := range e.reps {
		a[i] = r != nil || (e.compress && encoding(i) != identity)
	}
	return a
}

// entryOverhead approximates the memory of an entry beyond its contents.
const entryOverhead = 256

// one returns a header value slice of capacity 1, so that a middleware
// appending to it gets a copy instead of writing into the shared one.
func one(v string) []string { return []string{v} }

// prepareHeaders fills the ready-made header values once e is loaded.
func (e *entry) prepareHeaders() {
	if e.isDir {
		return
	}
	if e.etag != "" {
		e.hdrETag = one(e.etag)
	}
	if !e.stamp.modTime.IsZero() {
		e.hdrLastMod = one(e.stamp.modTime.UTC().Format(http.TimeFormat))
	}
	e.hdrType = one(e.ctype)
	e.hdrLength = one(strconv.FormatInt(e.stamp.size, 10))
	for _, r := range e.reps {
		if r != nil {
			r.hdrETag = one(r.etag)
			r.hdrLength = one(strconv.FormatInt(r.size, 10))
		}
	}
}

func (e *entry) computeCost() {
	e.cost = entryOverhead + int64(len(e.name)) + int64(len(e.content))
	for _, r := range e.reps {
		if r != nil {
			e.cost += int64(len(r.content))
		}
	}
}

// cache is a byte-bounded map of entries evicted by the CLOCK algorithm: a
// hit only sets a flag, so concurrent readers share a read lock and never
// reorder a list.
type cache struct {
	max int64
	// onUsed, when set, is told every change of the bytes held.
	onUsed func(delta int64)

	mu   sync.RWMutex
	m    map[string]*entry
	ring []*entry
	hand int
	used int64
}

func newCache(maxBytes int64) *cache {
	return &cache{max: maxBytes, m: make(map[string]*entry)}
}

func (c *cache) get(name string) *entry {
	c.mu.RLock()
	e := c.m[name]
	c.mu.RUnlock()
	if e != nil && !e.ref.Load() {
		e.ref.Store(true)
	}
	return e
}

// put stores e, replacing any entry for the same name, and evicts until
// the cache fits. An entry larger than the whole cache is not kept.
func (c *cache) put(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(e)
}

func (c *cache) putLocked(e *entry) {
	if old := c.m[e.name]; old != nil {
		c.removeLocked(old)
	}
	if e.cost > c.max {
		return
	}
	e.ref.Store(true)
	e.slot = len(c.ring)
	c.ring = append(c.ring, e)
	c.m[e.name] = e
	e.fds.open()
	c.used += e.cost
	if c.onUsed != nil {
		c.onUsed(e.cost)
	}
	for c.used > c.max && len(c.ring) > 0 {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		victim := c.ring[c.hand]
		if victim.ref.Load() && victim != e {
			victim.ref.Store(false)
			c.hand++
			continue
		}
		if victim == e && len(c.ring) > 1 {
			c.hand++
			continue
		}
		c.removeLocked(victim)
	}
}

// removeEntry drops e if it is still the entry for its name: a request
// that found e stale must not drop the fresh entry another has just put.
func (c *cache) removeEntry(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[e.name] == e {
		c.removeLocked(e)
	}
}

func (c *cache) removeLocked(e *entry) {
	last := len(c.ring) - 1
	moved := c.ring[last]
	c.ring[e.slot] = moved
	moved.slot = e.slot
	c.ring[last] = nil
	c.ring = c.ring[:last]
	delete(c.m, e.name)
	e.fds.close()
	c.used -= e.cost
	if c.onUsed != nil {
		c.onUsed(-e.cost)
	}
}

// replace puts fresh in the place of old and reports true, unless the
// entry for the name has changed since old was read (a newer version is
// there) or fresh does not fit.
func (c *cache) replace(old, fresh *entry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.m[old.name]; cur != old && cur != nil {
		return false
	}
	c.putLocked(fresh)
	return c.m[fresh.name] == fresh
}

// clear drops every entry, closing their descriptors.
func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.ring) > 0 {
		c.removeLocked(c.ring[len(c.ring)-1])
	}
}

// stats returns the number of entries and the bytes they hold.
func (c *cache) stats() (n int, used int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m), c.used
}
