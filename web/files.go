package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
	"golang.org/x/sync/singleflight"
)

// Files serves a directory or an fs.FS over HTTP the way a static web
// server should: validators, ranges, precompressed and on-the-fly
// compression, Cache-Control rules, directory index and listing, SPA
// fallback, and no way out of its root. It is an http.Handler; use
// EchoHandler to mount it in an Echo app. Safe for concurrent use.
type Files struct {
	cfg   FilesConfig
	fsys  fs.FS
	root  *os.Root // opened by NewFiles, closed by Close
	cache *cache
	// variants holds the compressed forms made on demand; nil when
	// CompressCacheMaxBytes is negative.
	variants *cache
	comp     *compressors
	// openFiles bounds the descriptors entries keep open (descriptors.go);
	// nil when OpenFilesMax is negative.
	openFiles   *openLimit
	log         *slog.Logger
	met         *filesMetrics
	loads       singleflight.Group
	compressing singleflight.Group
	hash        *hashers

	// lastWarn (unix nanoseconds) and quiet rate-limit the warnings of
	// lookupFailed: the paths come from clients, who must not be able to
	// flood the log.
	lastWarn, quiet atomic.Int64
}

// warnEvery is the least time between two lookup warnings; the failures
// in between are logged at debug and counted in the next warning.
const warnEvery = time.Minute

var _ http.Handler = (*Files)(nil)

// metadataOnlyCache bounds the cache when contents are not kept in memory
// (CacheMaxBytes < 0): it still remembers ETags and sidecars.
const metadataOnlyCache = 16 << 20

// NewFiles returns a handler over cfg.Root, or over the file system given
// with WithFS. Call Close to release the root directory.
func NewFiles(cfg FilesConfig, opts ...Option) (*Files, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	cfg = cfg.withDefaults()
	f := &Files{cfg: cfg, fsys: o.fsys, comp: newCompressors(cfg.CompressLimit), log: obs.Logger(o.log), hash: newHashers()}
	if f.fsys == nil {
		if cfg.Root == "" {
			return nil, ErrNoRoot
		}
		root, err := os.OpenRoot(cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("web: open root: %w", err)
		}
		f.root, f.fsys = root, root.FS()
	}
	max := cfg.CacheMaxBytes
	if max < 0 {
		max = metadataOnlyCache
	}
	met, err := newFilesMetrics(o.reg)
	if err != nil {
		f.Close()
		return nil, err
	}
	f.met = met
	if cfg.OpenFilesMax > 0 {
		f.openFiles = &openLimit{max: int64(cfg.OpenFilesMax)}
	}
	f.cache = newCache(max)
	f.cache.onUsed = func(d int64) { met.bytes.Add(float64(d)) }
	if cfg.CompressCacheMaxBytes > 0 {
		f.variants = newCache(cfg.CompressCacheMaxBytes)
		f.variants.onUsed = func(d int64) { met.compressedBytes.Add(float64(d)) }
	}
	return f, nil
}

// Close releases the root directory opened by NewFiles and the files it
// keeps open.
func (f *Files) Close() error {
	f.hash.close()
	f.cache.clear()
	if f.root != nil {
		return f.root.Close()
	}
	return nil
}

// ServeHTTP answers GET and HEAD for files under the root.
func (f *Files) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveRequest(f, httpExchange{w: w, r: r})
}

// serveRequest answers one request on either engine: the file rules, from
// the method and path to the body sent.
func serveRequest[X exchange](f *Files, x X) {
	if m := x.method(); m != http.MethodGet && m != http.MethodHead {
		x.setHeader("Allow", allowGetHead)
		refuse(f, x, tier.NewProblem(http.StatusMethodNotAllowed, "static files answer GET and HEAD only"))
		return
	}
	if x.encodedSlash() {
		refuse(f, x, tier.NewProblem(http.StatusBadRequest, errBadPath.Error()+": encoded slash"))
		return
	}
	name, dir, err := cleanPath(x.path(), f.cfg.Prefix)
	if err != nil {
		refuse(f, x, tier.NewProblem(http.StatusBadRequest, err.Error()))
		return
	}
	if !f.cfg.Dotfiles && hidden(name) {
		notFound(f, x)
		return
	}
	e, err := f.lookup(name)
	if err != nil {
		lookupFailed(f, x, err)
		return
	}
	if !e.isDir {
		if dir {
			notFound(f, x) // a file asked for as a directory
			return
		}
		serve(f, x, e)
		return
	}
	if !dir {
		// Relative links in an index page need the trailing slash.
		loc := x.escapedPath() + "/"
		if q := x.rawQuery(); q != "" {
			loc += "?" + q
		}
		x.setHeader("Location", one(loc))
		x.writeHeader(http.StatusMovedPermanently)
		return
	}
	idx, err := f.lookup(path.Join(name, f.cfg.Index))
	if err == nil && !idx.isDir {
		serve(f, x, idx)
		return
	}
	if f.cfg.Listing {
		list(f, x, name)
		return
	}
	refuse(f, x, tier.NewProblem(http.StatusForbidden, "directory listing is disabled"))
}

var allowGetHead = []string{"GET, HEAD"}

// lookupFailed maps a failed lookup to 403 or 404; anything but "not
// there" or "not allowed" (an I/O error, a link out of the root) is logged.
func lookupFailed[X exchange](f *Files, x X, err error) {
	switch {
	case errors.Is(err, fs.ErrPermission):
		refuse(f, x, tier.NewProblem(http.StatusForbidden, "permission denied"))
		return
	case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) &&
		!errors.Is(err, syscall.ENOTDIR) && !errors.Is(err, syscall.ENAMETOOLONG):
		f.logLookup(x.context(), x.path(), err)
	}
	notFound(f, x)
}

// logLookup warns of an unexpected lookup failure at most once per
// warnEvery, and logs the others at debug.
func (f *Files) logLookup(ctx context.Context, urlPath string, err error) {
	now, last := time.Now().UnixNano(), f.lastWarn.Load()
	if now-last < int64(warnEvery) || !f.lastWarn.CompareAndSwap(last, now) {
		f.quiet.Add(1)
		f.log.DebugContext(ctx, "web: file lookup", "path", urlPath, "err", err)
		return
	}
	f.log.WarnContext(ctx, "web: file lookup (more within a minute are logged at debug)",
		"path", urlPath, "err", err, "since_last_warning", f.quiet.Swap(0))
}

// notFound answers 404, or the SPA index for a browser navigation outside
// the excluded prefixes.
func notFound[X exchange](f *Files, x X) {
	// A browser navigation, unlike an API or asset request, accepts HTML.
	if f.cfg.SPA && strings.Contains(x.headerList("Accept"), "text/html") && !f.spaExcluded(x.path()) {
		if idx, err := f.lookup(f.cfg.Index); err == nil && !idx.isDir {
			serve(f, x, idx)
			return
		}
	}
	refuse(f, x, tier.NewProblem(http.StatusNotFound, "no such file"))
}

func (f *Files) spaExcluded(p string) bool {
	for _, ex := range f.cfg.SPAExclude {
		if strings.HasPrefix(p, ex) || p+"/" == ex {
			return true
		}
	}
	return false
}

// lookup returns the entry for name, from the cache when it is still
// current on disk.
func (f *Files) lookup(name string) (*entry, error) {
	if e := f.cache.get(name); e != nil {
		if f.current(e) {
			f.met.hits.Inc()
			return e, nil
		}
		f.cache.removeEntry(e)
	}
	f.met.misses.Inc()
	// Concurrent misses share one load: a small file is read whole, and
	// a burst of requests must not read it once each.
	v, err, _ := f.loads.Do(name, func() (any, error) {
		e, err := f.load(name, nil)
		if err != nil {
			return nil, err
		}
		f.cache.put(e)
		if e.unhashed {
			f.hashLater(e)
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*entry), nil
}

// current reports whether e still matches the disk, checking at most once
// per CacheCheck.
func (f *Files) current(e *entry) bool {
	now := time.Now().UnixNano()
	if f.cfg.CacheCheck > 0 && now-e.checked.Load() < int64(f.cfg.CacheCheck) {
		return true
	}
	st, err := f.stat(fsName(e.name))
	if err != nil || st != e.stamp {
		return false
	}
	if !e.isDir {
		for _, enc := range preference {
			st, _ := f.stat(fsName(e.name) + enc.ext())
			if st != e.sidecars[enc] {
				return false
			}
		}
	}
	e.checked.Store(now)
	return true
}

// stat returns the stamp of a regular file or directory; anything else
// (devices, sockets) does not exist as far as the handler is concerned.
func (f *Files) stat(name string) (stamp, error) {
	fi, err := fs.Stat(f.fsys, name)
	if err != nil {
		return stamp{}, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return stamp{}, fs.ErrNotExist
	}
	return stampOf(fi), nil
}

func stampOf(fi fs.FileInfo) stamp {
	st := stamp{modTime: fi.ModTime(), ino: inode(fi)}
	if !fi.IsDir() {
		st.size = fi.Size()
	}
	return st
}

// fsName maps the handler's names ("" for the root) to fs.FS names.
func fsName(name string) string {
	if name == "" {
		return "."
	}
	return name
}

// load reads what serving name needs: its ETag, its contents when small,
// its sidecars, and whether compressed forms are worth making. The ETags
// of large files come from known, made off the request path, when they
// are of the version on disk; without, the entry is unhashed.
func (f *Files) load(name string, known map[string]digest) (*entry, error) {
	fi, err := fs.Stat(f.fsys, fsName(name))
	if err != nil {
		return nil, err
	}
	// The name may view a request's memory (fastExchange): the cache
	// keeps a copy.
	name = strings.Clone(name)
	e := &entry{name: name, isDir: fi.IsDir(), stamp: stampOf(fi)}
	e.checked.Store(time.Now().UnixNano())
	if e.isDir {
		e.computeCost()
		return e, nil
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	e.ctype = contentType(name)
	if e.content, e.etag, err = f.readFile(name, fi, known); err != nil {
		return nil, err
	}
	e.unhashed = e.etag == ""
	if e.content == nil {
		e.fds.limit = f.openFiles
	} else {
		// A file rewritten between the stat and the read: the length
		// sent must be that of the bytes kept. The stamp then differs
		// from the disk, so the next check loads the file again.
		e.stamp.size = int64(len(e.content))
	}
	for _, enc := range preference {
		sname := name + enc.ext()
		sfi, err := fs.Stat(f.fsys, sname)
		if err != nil || !sfi.Mode().IsRegular() {
			continue
		}
		content, etag, err := f.readFile(sname, sfi, known)
		if err != nil {
			continue
		}
		e.sidecars[enc] = stampOf(sfi)
		if etag == "" {
			e.unhashed = true // offered once hashed
			continue
		}
		size := sfi.Size()
		if content != nil {
			size = int64(len(content)) // as for the file itself
			e.sidecars[enc].size = size
		}
		e.reps[enc] = &rep{etag: etag, size: size, content: content, file: sname}
	}
	if !f.cfg.DisableCompression && e.etag != "" && compressible(name, e.ctype) && e.stamp.size >= f.cfg.CompressMinSize {
		e.compress = true
		for _, enc := range preference {
			e.variantETags[enc] = variantETag(e.etag, enc)
		}
	}
	e.prepareHeaders()
	// Rules match the file served, so a directory index or the SPA
	// fallback gets the rules of index.html.
	if cc := f.cfg.CacheControl.value(f.cfg.Prefix + name); cc != "" {
		e.hdrCacheControl = one(cc)
	}
	e.computeCost()
	return e, nil
}

// readFile returns, for a file small enough to cache, its contents and
// strong ETag; for a larger one, its ETag: known for its version, hashed
// now up to HashFileMax, or "" (to be hashed in the background).
func (f *Files) readFile(name string, fi fs.FileInfo, known map[string]digest) (content []byte, etag string, err error) {
	if f.cfg.CacheMaxBytes > 0 && fi.Size() <= f.cfg.CacheFileMax {
		content, err = fs.ReadFile(f.fsys, name)
		if err != nil {
			return nil, "", err
		}
		sum := sha256.Sum256(content)
		return content, formatETag(sum[:]), nil
	}
	if d, ok := known[name]; ok && d.stamp == stampOf(fi) {
		return nil, d.etag, nil
	}
	if fi.Size() > f.cfg.HashFileMax {
		return nil, "", nil // hashed in the background
	}
	d, err := f.hashFile(name)
	if err != nil {
		return nil, "", err
	}
	return nil, d.etag, nil
}

func etagOf(h hash.Hash) string { return formatETag(h.Sum(nil)) }

// formatETag makes a strong ETag from a content digest: 128 bits are
// plenty to tell versions of one file apart, and the same bytes give the
// same ETag on every server of the tier.
func formatETag(sum []byte) string {
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`
}

// variantETag names a compressed form made by the handler: a different
// representation needs a different strong ETag.
func variantETag(etag string, enc encoding) string {
	return etag[:len(etag)-1] + "-" + enc.token() + `"`
}

// header returns the first value of a request header by its canonical
// key, without canonicalizing it again.
func header(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

var (
	acceptRangesBytes = []string{"bytes"}
	encodingHeaders   = [numEncodings][]string{encBrotli: {"br"}, encZstd: {"zstd"}, encGzip: {"gzip"}}
)

// errStale: the file on disk is no longer the version in the cache, found
// before any header was sent, so the request can be served again.
var errStale = errors.New("file changed on disk")

// headersSet lists what serveFile may set before it finds a file stale.
var headersSet = []string{"Cache-Control", "Vary", "Etag", "Last-Modified", "Content-Type",
	"Content-Encoding", "Accept-Ranges", "Content-Length", "Content-Range"}

// serve sends e, and once more from disk if the file changed between the
// lookup and the open.
func serve[X exchange](f *Files, x X, e *entry) {
	for attempt := 0; ; attempt++ {
		if !errors.Is(serveFile(f, x, e), errStale) {
			return
		}
		f.cache.removeEntry(e)
		for _, k := range headersSet {
			x.delHeader(k)
		}
		if attempt > 0 {
			p := tier.NewProblem(http.StatusServiceUnavailable, "the file keeps changing on disk")
			p.RetryAfter = time.Second
			refuse(f, x, p)
			return
		}
		var err error
		if e, err = f.lookup(e.name); err != nil {
			lookupFailed(f, x, err)
			return
		}
		if e.isDir {
			notFound(f, x)
			return
		}
	}
}

// autoLengthMax is the largest body net/http sizes on its own when the
// handler writes it at once and returns: the size of its chunking buffer.
const autoLengthMax = 2048

// serveFile sends e (or its best compressed form) after the conditional
// and range headers are applied. It returns errStale, having written
// nothing, when the file changed since e was loaded.
func serveFile[X exchange](f *Files, x X, e *entry) error {
	if e.hdrCacheControl != nil {
		x.setHeader("Cache-Control", e.hdrCacheControl)
	}
	head := x.method() == http.MethodHead
	rangeHeader := ""
	if !head {
		rangeHeader = x.header("Range")
	}
	enc := identity
	if e.negotiable() {
		x.addHeader("Vary", "Accept-Encoding")
		// A range is always of the identity form: a client resuming a
		// download must be able to splice the bytes it already has.
		if rangeHeader == "" {
			enc = negotiate(x.header("Accept-Encoding"), e.avail())
		}
	}
	var rp *rep
	var v *entry
	var zw resetWriter
	etag, size := e.etag, e.stamp.size
	hdrETag := e.hdrETag
	if enc != identity {
		if rp = e.reps[enc]; rp != nil {
			etag, size, hdrETag = rp.etag, rp.size, rp.hdrETag
		} else {
			var err error
			if v, zw, err = onDemand(f, x, e, enc); err != nil {
				return err
			}
			switch {
			case v != nil:
				etag, hdrETag = v.etag, v.hdrETag
			case zw != nil:
				// The encoder goes back to its pool unless the body
				// stream takes it (sendEncoded).
				defer func() {
					if zw != nil {
						f.comp.put(enc, zw)
					}
				}()
				etag = e.variantETags[enc]
				hdrETag = one(etag)
			default:
				enc = identity
			}
		}
	}
	// Header keys are written in canonical form ("Etag") so that no
	// request pays for canonicalizing them.
	if hdrETag != nil {
		x.setHeader("Etag", hdrETag)
	}
	if e.hdrLastMod != nil {
		x.setHeader("Last-Modified", e.hdrLastMod)
	}
	switch precondition(x, etag, e.stamp.modTime) {
	case http.StatusNotModified:
		x.writeHeader(http.StatusNotModified)
		return nil
	case http.StatusPreconditionFailed:
		refuse(f, x, tier.NewProblem(http.StatusPreconditionFailed, "precondition failed"))
		return nil
	}
	x.setHeader("Content-Type", e.hdrType)
	if enc != identity {
		x.setHeader("Content-Encoding", encodingHeaders[enc])
		return sendEncoded(f, x, e, enc, rp, v, &zw)
	}
	if rangeHeader != "" && ifRangeAllows(x.header("If-Range"), etag, e.stamp.modTime) {
		ranges, err := parseRange(rangeHeader, size)
		switch {
		case errors.Is(err, errUnsatisfiable):
			x.setHeader("Content-Range", one("bytes */"+strconv.FormatInt(size, 10)))
			refuse(f, x, tier.NewProblem(http.StatusRequestedRangeNotSatisfiable, "no requested range overlaps the file"))
			return nil
		case err == nil:
			return sendRanges(f, x, e, ranges)
		}
	}
	x.setHeader("Accept-Ranges", acceptRangesBytes)
	if e.content != nil {
		// net/http and HTTP/2 add the Content-Length of a small body
		// written at once themselves (see http.ResponseWriter.Write), as
		// fasthttp does for every body in memory. Leaving it to them
		// keeps a typical response at eight header entries, the most a
		// Go map holds before it grows into a table that net/http then
		// copies for every response.
		if head || len(e.content) > autoLengthMax {
			x.setHeader("Content-Length", e.hdrLength)
		}
		x.writeHeader(http.StatusOK)
		if !head {
			x.write(e.content)
		}
		return nil
	}
	x.setHeader("Content-Length", e.hdrLength)
	file, err := f.open(e)
	if err != nil {
		return err
	}
	x.writeHeader(http.StatusOK)
	if head {
		e.fds.give(file)
		return nil
	}
	x.sendFile(file, size, e.fds.give)
	return nil
}

// open returns a descriptor of e's file, at offset 0, to give back to
// e.fds when sent: one kept open since an earlier request, or one opened
// now and checked to be the version whose headers are about to go out.
func (f *Files) open(e *entry) (fs.File, error) {
	if file := e.fds.take(); file != nil {
		return file, nil
	}
	file, err := f.fsys.Open(e.name)
	if err != nil {
		return nil, errStale
	}
	if fi, err := file.Stat(); err != nil || stampOf(fi) != e.stamp {
		file.Close()
		return nil, errStale
	}
	return file, nil
}

// closeFile is the release of a descriptor that is not kept.
func closeFile(file fs.File) { _ = file.Close() }

// sendEncoded sends a compressed form: a sidecar (rp) or a form made
// once (v) with its length, or one compressed while sent by *zw (no
// length, chunked), which it takes, setting *zw to nil.
func sendEncoded[X exchange](f *Files, x X, e *entry, enc encoding, rp *rep, v *entry, zw *resetWriter) error {
	head := x.method() == http.MethodHead
	switch {
	case v != nil:
		// A file sent from disk is never sent stale in its identity form
		// (see open); nor is a form made of it.
		if e.content == nil {
			if st, err := f.stat(fsName(e.name)); err != nil || st != e.stamp {
				return errStale
			}
		}
		x.setHeader("Content-Length", v.hdrLength)
		x.writeHeader(http.StatusOK)
		if !head {
			x.write(v.content)
		}
		return nil
	case rp != nil && rp.content != nil:
		x.setHeader("Content-Length", rp.hdrLength)
		x.writeHeader(http.StatusOK)
		if !head {
			x.write(rp.content)
		}
		return nil
	case rp != nil:
		file, err := f.fsys.Open(rp.file)
		if err != nil {
			return errStale
		}
		if fi, err := file.Stat(); err != nil || stampOf(fi) != e.sidecars[enc] {
			file.Close()
			return errStale
		}
		x.setHeader("Content-Length", rp.hdrLength)
		x.writeHeader(http.StatusOK)
		if head {
			file.Close()
			return nil
		}
		x.sendFile(file, rp.size, closeFile)
		return nil
	}
	var file fs.File
	if e.content == nil {
		var err error
		if file, err = f.open(e); err != nil {
			return err
		}
	}
	x.writeHeader(http.StatusOK)
	if head {
		if file != nil {
			e.fds.give(file)
		}
		return nil
	}
	z := *zw
	*zw = nil
	// The body may be sent after the handler has returned, when the
	// engine reuses the request's memory.
	ctx, urlPath := x.context(), strings.Clone(x.path())
	x.stream(func(w io.Writer) {
		defer f.comp.put(enc, z)
		src := io.Reader(bytes.NewReader(e.content))
		if file != nil {
			defer e.fds.give(file)
			src = file
		}
		z.Reset(w)
		_, err := io.Copy(z, src)
		if cerr := z.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			f.log.DebugContext(ctx, "web: compressed send", "path", urlPath, "err", err)
		}
	})
	return nil
}

// sendRanges answers 206 with one range, or with multipart/byteranges.
func sendRanges[X exchange](f *Files, x X, e *entry, ranges []byteRange) error {
	size := e.stamp.size
	var file fs.File
	if e.content == nil {
		var err error
		if file, err = f.open(e); err != nil {
			return err
		}
	}
	if len(ranges) == 1 {
		br := ranges[0]
		x.setHeader("Content-Range", one(br.contentRange(size)))
		x.setHeader("Content-Length", one(strconv.FormatInt(br.length(), 10)))
		x.writeHeader(http.StatusPartialContent)
		if file == nil {
			x.write(e.content[br.start:br.end])
			return nil
		}
		if err := seek(file, br.start); err != nil {
			e.fds.give(file)
			return nil
		}
		x.sendFile(file, br.length(), e.fds.give)
		return nil
	}
	mp := newByteranges(ranges, e.ctype, size)
	x.setHeader("Content-Type", one(mp.contentType()))
	x.setHeader("Content-Length", one(strconv.FormatInt(mp.length, 10)))
	x.writeHeader(http.StatusPartialContent)
	parts := make([]bodyPart, len(ranges))
	for i, br := range ranges {
		parts[i] = bodyPart{head: mp.heads[i], span: br}
	}
	if file == nil {
		x.sendParts(e.content, nil, parts, mp.tail, mp.length, noRelease)
		return nil
	}
	x.sendParts(nil, file, parts, mp.tail, mp.length, e.fds.give)
	return nil
}
