package web

import (
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"sync"
)

// Files larger than HashFileMax (and CacheFileMax) are not hashed on the
// request path: reading a large file whole would hold its first request
// for as long as that takes. They are served at once with Last-Modified as their only
// validator (and without their sidecars or compressed forms, whose ETags
// derive from hashes), while a background hash makes the strong, content
// based ETag every server of the tier agrees on; the entry is then
// replaced by one that carries it.

// digest is the ETag of one version of a file, made off the request path.
type digest struct {
	stamp stamp
	etag  string
}

// hashRounds bounds how often a file that keeps changing while it is
// hashed is hashed again; it is tried once more when next seen changed.
const hashRounds = 3

// hashers hashes large files in the background, one at a time, so that
// hashing takes at most a core from serving.
type hashers struct {
	slot    chan struct{}
	stop    chan struct{} // closed by Files.Close
	once    sync.Once
	pending sync.Map // names being hashed
	running sync.WaitGroup
}

func newHashers() *hashers {
	return &hashers{slot: make(chan struct{}, 1), stop: make(chan struct{})}
}

// close stops the hashes under way and waits for them.
func (h *hashers) close() {
	h.once.Do(func() { close(h.stop) })
	h.running.Wait()
}

var errClosed = errors.New("web: files closed")

// hashLater hashes the large parts of e, which is in the cache, in the
// background, and puts the entry with their ETags in its place.
func (f *Files) hashLater(e *entry) {
	if _, busy := f.hash.pending.LoadOrStore(e.name, true); busy {
		return
	}
	f.hash.running.Add(1)
	go func() {
		defer f.hash.running.Done()
		defer f.hash.pending.Delete(e.name)
		for range hashRounds {
			known, err := f.hashParts(e.name)
			if err != nil {
				return // tried again when the entry is next loaded
			}
			fresh, err := f.load(e.name, known)
			if err != nil || !f.cache.replace(e, fresh) || !fresh.unhashed {
				return
			}
			e = fresh // changed while hashed
		}
	}()
}

// hashParts returns the digests of name and its sidecars, those too
// large to be hashed when loaded.
func (f *Files) hashParts(name string) (map[string]digest, error) {
	select {
	case f.hash.slot <- struct{}{}:
	case <-f.hash.stop:
		return nil, errClosed
	}
	defer func() { <-f.hash.slot }()
	known := make(map[string]digest)
	parts := []string{name}
	for _, enc := range preference {
		parts = append(parts, name+enc.ext())
	}
	for _, part := range parts {
		d, err := f.hashFile(part)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return nil, err
		}
		known[part] = d
	}
	return known, nil
}

// hashFile hashes one regular file, checking that it did not change
// while read; a Close cuts it short.
func (f *Files) hashFile(name string) (digest, error) {
	file, err := f.fsys.Open(name)
	if err != nil {
		return digest{}, err
	}
	defer file.Close()
	before, err := file.Stat()
	if err != nil {
		return digest{}, err
	}
	if !before.Mode().IsRegular() {
		return digest{}, fs.ErrNotExist
	}
	h := sha256.New()
	if _, err := io.Copy(h, stopReader{file, f.hash.stop}); err != nil {
		return digest{}, err
	}
	after, err := file.Stat()
	if err != nil {
		return digest{}, err
	}
	if stampOf(after) != stampOf(before) {
		return digest{}, errStale
	}
	return digest{stamp: stampOf(before), etag: etagOf(h)}, nil
}

// stopReader ends a background read when the Files is closed.
type stopReader struct {
	r    io.Reader
	stop <-chan struct{}
}

func (s stopReader) Read(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errClosed
	default:
		return s.r.Read(p)
	}
}
