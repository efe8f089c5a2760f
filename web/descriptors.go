package web

import (
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
)

// openLimit bounds the idle descriptors a Files keeps across all its
// entries, as nginx's open_file_cache max does.
type openLimit struct {
	max  int64
	held atomic.Int64
}

// descriptors are the idle open descriptors of one cached entry's file,
// each at offset 0 and of the version the entry describes: a large file
// is then sent with no open, no stat and no close, as nginx sends one
// from its open_file_cache. They are checked with the entry, every
// CacheCheck, and closed when the entry leaves the cache.
type descriptors struct {
	limit *openLimit // nil: none are kept

	mu   sync.Mutex
	idle []fs.File
	// cached: the entry is in the cache. An entry that never got in, or
	// has left, keeps nothing, so that no descriptor outlives its entry.
	cached bool
}

// take returns an idle descriptor, or nil.
func (d *descriptors) take() fs.File {
	if d.limit == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.idle)
	if n == 0 {
		return nil
	}
	file := d.idle[n-1]
	d.idle[n-1] = nil
	d.idle = d.idle[:n-1]
	d.limit.held.Add(-1)
	return file
}

// give keeps file for the next request, rewound, or closes it when the
// entry is gone, the limit is reached or it cannot be rewound.
func (d *descriptors) give(file fs.File) {
	if !d.keep(file) {
		_ = file.Close()
	}
}

func (d *descriptors) keep(file fs.File) bool {
	s, ok := file.(io.Seeker)
	if d.limit == nil || !ok {
		return false
	}
	if _, err := s.Seek(0, io.SeekStart); err != nil {
		return false
	}
	if d.limit.held.Add(1) > d.limit.max {
		d.limit.held.Add(-1)
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.cached {
		d.limit.held.Add(-1)
		return false
	}
	d.idle = append(d.idle, file)
	return true
}

// open starts keeping descriptors, once the entry is in the cache.
func (d *descriptors) open() {
	if d.limit == nil {
		return
	}
	d.mu.Lock()
	d.cached = true
	d.mu.Unlock()
}

// close closes the idle descriptors as the entry leaves the cache; those
// in use are closed when given back.
func (d *descriptors) close() {
	if d.limit == nil {
		return
	}
	d.mu.Lock()
	idle := d.idle
	d.idle, d.cached = nil, false
	d.mu.Unlock()
	d.limit.held.Add(-int64(len(idle)))
	for _, file := range idle {
		_ = file.Close()
	}
}
