package balancer

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPick measures choosing an endpoint, per policy, for 3 and 1,000
// endpoints. Target: ≤ 100 ns and no allocation.
func BenchmarkPick(b *testing.B) {
	reqs := make([]*http.Request, 1024) // for hash: 1,024 users
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "/", nil)
		reqs[i].Header.Set("X-User", fmt.Sprintf("user-%d", i))
	}
	for _, policy := range policies {
		for _, n := range []int{3, 1000} {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				p := staticPool(b, n, Config{Policy: policy, HashKey: "header:X-User"})
				for i, e := range p.eps { // varied weights and latencies, as in life
					e.weight.Store(int32(1 + i%3))
					e.observe(time.Duration(1+i%7)*time.Millisecond, time.Now().UnixNano())
				}
				p.mu.Lock()
				p.rebuild()
				p.mu.Unlock()
				b.ReportAllocs()
				report := reportCPU(b)
				i := 0
				for b.Loop() {
					i++
					if p.pick(reqs[i&1023], nil) == nil {
						b.Fatal("no endpoint")
					}
				}
				report()
			})
		}
	}
}

// BenchmarkPickParallel is Pick from every CPU at once: the shared state
// is one atomic load (plus, for round robin, one atomic add).
func BenchmarkPickParallel(b *testing.B) {
	for _, policy := range []string{PolicyRoundRobin, PolicyLeastRequest, PolicyP2CEWMA} {
		b.Run(policy, func(b *testing.B) {
			p := staticPool(b, 1000, Config{Policy: policy})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "/", nil)
				for pb.Next() {
					p.pick(req, nil)
				}
			})
		})
	}
}

// reportCPU starts measuring the process's CPU time; the function it
// returns reports it per operation as cpu-ns/op. On a shared machine, where
// other work steals the CPUs, it varies much less than wall time.
func reportCPU(b *testing.B) func() {
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	return func() {
		var after syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
		b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	}
}

// benchBackend is a minimal HTTP server on 127.0.0.1.
func benchBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func benchTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	tr.MaxIdleConns = 0
	return tr
}

func benchGet(b *testing.B, rt http.RoundTripper, url string) {
	client := &http.Client{Transport: rt}
	b.ReportAllocs()
	b.SetParallelism(4) // 4 clients per CPU
	// CPU time per request (client and backends, all in this process): on
	// a machine of its own, throughput is bound by it.
	defer reportCPU(b)()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
	})
}

// BenchmarkThroughput compares a Go client through the pool to two local
// backends with a plain http.Transport to one. Target: the pool at ≥ 0.95×
// the plain transport's requests per second (compare ns/op).
func BenchmarkThroughput(b *testing.B) {
	b.Run("transport/1-backend", func(b *testing.B) {
		url := benchBackend(b)
		tr := benchTransport()
		defer tr.CloseIdleConnections()
		benchGet(b, tr, url+"/")
	})
	b.Run("pool/2-backends", func(b *testing.B) {
		p, err := New(Config{Endpoints: []string{benchBackend(b), benchBackend(b)}}, WithTransport(benchTransport()))
		if err != nil {
			b.Fatal(err)
		}
		defer p.transport.(*http.Transport).CloseIdleConnections()
		benchGet(b, p, "http://upstream/")
	})
}
