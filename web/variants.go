package web

import (
	"bytes"
	"context"
	"errors"
	"io"
)

// Compressed forms without a sidecar are made on demand. A file of at most
// CompressFileMax bytes is compressed once per coding and kept in the
// variant cache, bounded by CompressCacheMaxBytes apart from the file
// cache; a larger one is compressed while it is sent. Either way the
// compression holds one of CompressLimit slots, and a request that finds
// none free is answered in the identity form.

// onDemand returns how to send e in coding enc, which has no sidecar: a
// cached form v, or an encoder zw to compress while sending (give it back
// with f.comp.put). Both nil: send the identity form, for
// every slot is taken or compression gains nothing. The error is errStale,
// or that of a client gone.
func onDemand[X exchange](f *Files, x X, e *entry, enc encoding) (v *entry, zw resetWriter, err error) {
	if f.variants == nil || e.stamp.size > f.cfg.CompressFileMax {
		// Reset to the body's writer when the body is sent.
		if zw = f.comp.get(enc, io.Discard); zw == nil {
			f.met.compressesSkipped.Inc()
			return nil, nil, nil
		}
		f.met.compressions.Inc()
		return nil, zw, nil
	}
	ctx := x.context()
	v, err = f.variant(ctx, e, enc)
	switch {
	case errors.Is(err, errBusy):
		f.met.compressesSkipped.Inc()
		return nil, nil, nil
	case errors.Is(err, errStale) || ctx.Err() != nil:
		return nil, nil, err
	case err != nil:
		f.log.DebugContext(ctx, "web: compress", "path", x.path(), "err", err)
		return nil, nil, nil
	case v.content == nil:
		return nil, nil, nil
	}
	return v, nil, nil
}

// variant returns the form of e in coding enc from the variant cache, or
// compresses it now. Concurrent requests for one form wait for a single
// compression; one whose client leaves stops waiting.
func (f *Files) variant(ctx context.Context, e *entry, enc encoding) (*entry, error) {
	key := e.variantETags[enc]
	if v := f.variants.get(key); v != nil {
		return v, nil
	}
	ch := f.compressing.DoChan(key, func() (any, error) { return f.makeVariant(e, enc) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*entry), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// makeVariant compresses e with enc and caches the result, as an entry
// named and tagged by its variant ETag. A form no smaller than the file is
// cached without content, so that it is not tried again.
func (f *Files) makeVariant(e *entry, enc encoding) (*entry, error) {
	src := io.Reader(bytes.NewReader(e.content))
	if e.content == nil {
		file, err := f.open(e)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		src = file
	}
	data, err := f.comp.compress(enc, src)
	if err != nil {
		return nil, err
	}
	f.met.compressions.Inc()
	key := e.variantETags[enc]
	v := &entry{name: key, etag: key, stamp: stamp{size: int64(len(data))}}
	if v.stamp.size < e.stamp.size {
		v.content = data
	}
	v.prepareHeaders()
	v.computeCost()
	f.variants.put(v)
	return v, nil
}
