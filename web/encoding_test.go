package web

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

// BenchmarkEncoderMemory compresses 2 MiB of text with each pooled
// encoder and reports what one encoder holds once used (held-B, from
// runtime.MemStats: what each concurrent compression costs) beside the
// allocations of one reuse (B/op). The figures in encoding.go come from
//
//	go test ./web -run '^$' -bench EncoderMemory -benchtime 3x
func BenchmarkEncoderMemory(b *testing.B) {
	data := prose(2<<20, 1)
	for _, enc := range preference {
		b.Run(enc.token(), func(b *testing.B) {
			c := newCompressors(1)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			zw := c.pools[enc].New().(resetWriter)
			compressInto(b, zw, io.Discard, data)
			runtime.GC()
			runtime.ReadMemStats(&after)
			held := float64(after.HeapAlloc) - float64(before.HeapAlloc)

			var out bytes.Buffer
			out.Grow(len(data))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				out.Reset()
				compressInto(b, zw, &out, data)
			}
			b.ReportMetric(held, "held-B")
			b.ReportMetric(float64(len(data))/float64(out.Len()), "ratio")
			runtime.KeepAlive(zw)
		})
	}
}

// compressInto writes data through zw to w in the 32 KiB writes io.Copy
// makes.
func compressInto(b *testing.B, zw resetWriter, w io.Writer, data []byte) {
	zw.Reset(w)
	for len(data) > 0 {
		n := min(32<<10, len(data))
		if _, err := zw.Write(data[:n]); err != nil {
			b.Fatal(err)
		}
		data = data[n:]
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
}
