package balancer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/tier"
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
					e.record(time.Duration(1+i%7)*time.Millisecond, true, time.Now().UnixNano())
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
	for _, policy := range []Policy{PolicyRoundRobin, PolicyLeastRequest, PolicyP2CEWMA} {
		b.Run(string(policy), func(b *testing.B) {
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

// benchBackendEnv makes the test binary a bare HTTP backend (see
// TestMain): benchmarks run their backends as processes of their own, so
// that the CPU time measured here is the client's alone.
const benchBackendEnv = "THREETIER_BALANCER_BENCH_BACKEND"

// serveBenchBackend answers "ok" on 127.0.0.1, prints its address, and
// exits when its standard input closes (when the benchmark is done).
func serveBenchBackend() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
}

// benchBackend starts a backend process and returns its base URL; the
// process is killed by its PID when the benchmark ends.
func benchBackend(b *testing.B) string {
	addr, _ := startChild(b, []string{"-test.run=^$"}, benchBackendEnv+"=1")
	return "http://" + addr
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
	// The client's CPU time per request: what the pool adds to a caller.
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
// the plain transport's requests per second (compare ns/op), and its CPU
// cost per request (cpu-ns/op, the client's process only) close to the
// plain transport's. The backends are separate processes.
func BenchmarkThroughput(b *testing.B) {
	b.Run("transport/1-backend", func(b *testing.B) {
		url := benchBackend(b)
		tr := benchTransport()
		defer tr.CloseIdleConnections()
		benchGet(b, tr, url+"/")
	})
	b.Run("pool/1-backend", func(b *testing.B) { // the pool's own cost, nothing else changed
		p, err := New(Config{Endpoints: []string{benchBackend(b)}}, WithTransport(benchTransport()))
		if err != nil {
			b.Fatal(err)
		}
		defer p.transport.(*http.Transport).CloseIdleConnections()
		benchGet(b, p, "http://upstream/")
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

// BenchmarkProxy is a Go client through a front-door node to two backend
// processes: the node's cost per request (CPU and allocations include the
// client's, the same in every case), beside httputil.ReverseProxy over the
// same pool. The side-by-side with HAProxy is examples/bench/lb.sh.
func BenchmarkProxy(b *testing.B) {
	front := func(b *testing.B, h func(*Pool) http.Handler) string {
		p, err := New(Config{Endpoints: []string{benchBackend(b), benchBackend(b)}})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(h(p))
		b.Cleanup(func() { srv.Close(); p.ownedTr.CloseIdleConnections() })
		return srv.URL
	}
	b.Run("proxy", func(b *testing.B) {
		url := front(b, func(p *Pool) http.Handler {
			px, err := NewProxy(ProxyConfig{}, []*Pool{p})
			if err != nil {
				b.Fatal(err)
			}
			return px
		})
		tr := benchTransport()
		defer tr.CloseIdleConnections()
		benchGet(b, tr, url+"/")
	})
	b.Run("proxy-rate-limited", func(b *testing.B) {
		// A limit never hit: what the table costs a request.
		url := front(b, func(p *Pool) http.Handler {
			px, err := NewProxy(ProxyConfig{RateLimit: 1e9}, []*Pool{p})
			if err != nil {
				b.Fatal(err)
			}
			return px
		})
		tr := benchTransport()
		defer tr.CloseIdleConnections()
		benchGet(b, tr, url+"/")
	})
	b.Run("fast", func(b *testing.B) {
		p, err := New(Config{Endpoints: []string{benchBackend(b), benchBackend(b)}})
		if err != nil {
			b.Fatal(err)
		}
		_, url := startProxyOn(b, EngineFast, ProxyConfig{}, []*Pool{p})
		b.Cleanup(p.fast.CloseIdle)
		tr := benchTransport()
		defer tr.CloseIdleConnections()
		benchGet(b, tr, url+"/")
	})
	// The fast path's handler alone, on a reused request: what the front
	// door spends per request beside the engine's own parsing and writing;
	// with the access log, what its line adds (written as text to nowhere).
	for _, accessLog := range []bool{false, true} {
		name := "fast-handler"
		if accessLog {
			name += "-access-log"
		}
		b.Run(name, func(b *testing.B) {
			p, err := New(Config{Endpoints: []string{benchBackend(b), benchBackend(b)}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.fast.CloseIdle)
			log, _ := tier.NewLogger(tier.LogConfig{}, io.Discard)
			opts := []Option{WithLogger(log)}
			if accessLog {
				opts = append(opts, WithAccessLog(tier.AccessLogConfig{}))
			}
			px, err := NewProxy(ProxyConfig{}, []*Pool{p}, opts...)
			if err != nil {
				b.Fatal(err)
			}
			var req fasthttp.Request // as read from a client, as wrk sends it
			if err := req.Read(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: front.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"))); err != nil {
				b.Fatal(err)
			}
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
			b.ReportAllocs()
			report := reportCPU(b)
			for b.Loop() {
				ctx.Response.Reset()
				px.serveFast(&ctx)
				if ctx.Response.StatusCode() != http.StatusOK {
					b.Fatalf("status %d", ctx.Response.StatusCode())
				}
			}
			report()
		})
	}
	b.Run("httputil", func(b *testing.B) {
		url := front(b, func(p *Pool) http.Handler {
			target, _ := neturl.Parse("http://upstream")
			return &httputil.ReverseProxy{
				Rewrite:      func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
				Transport:    p,
				ErrorHandler: ProxyErrorHandler,
			}
		})
		tr := benchTransport()
		defer tr.CloseIdleConnections()
		benchGet(b, tr, url+"/")
	})
}
