package balancer

import (
	"context"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/threetier/threetier/internal/wait"
)

// zone is a tiny authoritative DNS server on 127.0.0.1 whose records the
// test changes while the pool watches them.
type zone struct {
	mu       sync.Mutex
	srv      map[string][]*dns.SRV // by owner name
	a        map[string]net.IP
	servfail bool
	failing  map[string]bool // names whose A lookups fail with SERVFAIL
	queries  int
	server   *dns.Server
	addr     string
}

func newZone(t *testing.T) *zone {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z := &zone{srv: map[string][]*dns.SRV{}, a: map[string]net.IP{}, addr: pc.LocalAddr().String()}
	started := make(chan struct{})
	z.server = &dns.Server{PacketConn: pc, Handler: z, NotifyStartedFunc: func() { close(started) }}
	go func() { _ = z.server.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = z.server.Shutdown() })
	return z
}

func (z *zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.queries++
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if z.servfail || z.failing[req.Question[0].Name] {
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1}
	switch q.Qtype {
	case dns.TypeSRV:
		for _, s := range z.srv[q.Name] {
			rr := *s
			hdr.Rrtype = dns.TypeSRV
			rr.Hdr = hdr
			m.Answer = append(m.Answer, &rr)
		}
	case dns.TypeA:
		if ip, ok := z.a[q.Name]; ok {
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
		}
	}
	if len(m.Answer) == 0 && q.Qtype != dns.TypeAAAA {
		if _, known := z.a[q.Name]; !known && z.srv[q.Name] == nil {
			m.Rcode = dns.RcodeNameError
		}
	}
	_ = w.WriteMsg(m)
}

// setSRV publishes one SRV record per backend under name, each with an A
// record for 127.0.0.1; priority 0 means 10.
func (z *zone) setSRV(name string, recs ...srvRec) {
	z.mu.Lock()
	defer z.mu.Unlock()
	var list []*dns.SRV
	for i, r := range recs {
		host, port, _ := net.SplitHostPort(r.b.ln.Addr().String())
		target := "node" + strconv.Itoa(i) + "-" + port + ".app.test."
		p, _ := strconv.Atoi(port)
		prio := r.priority
		if prio == 0 {
			prio = 10
		}
		list = append(list, &dns.SRV{Target: target, Port: uint16(p), Weight: r.weight, Priority: prio})
		z.a[target] = net.ParseIP(host)
	}
	z.srv[name] = list
}

type srvRec struct {
	b        *backend
	weight   uint16
	priority uint16
}

func (z *zone) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", z.addr)
	}}
}

func endpointURLs(p *Pool) []string {
	var urls []string
	for _, s := range p.Snapshot() {
		urls = append(urls, s.URL)
	}
	slices.Sort(urls)
	return urls
}

func sortedURLs(bs ...*backend) []string {
	var urls []string
	for _, b := range bs {
		urls = append(urls, b.url)
	}
	slices.Sort(urls)
	return urls
}

func TestDNSSRVDiscovery(t *testing.T) {
	z := newZone(t)
	a, b, c, d := newBackend(t), newBackend(t), newBackend(t), newBackend(t)
	const name = "_http._tcp.app.test."
	z.setSRV(name, srvRec{b: a, weight: 1}, srvRec{b: b, weight: 3})

	p := newPool(t, Config{DiscoveryInterval: 100 * time.Millisecond},
		WithDiscovery(&DNS{Host: name, SRV: true, Resolver: z.resolver()}))
	if _, err := p.Client().Get("http://app/"); err == nil {
		t.Fatal("before Start there is no endpoint yet")
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := endpointURLs(p); !slices.Equal(got, sortedURLs(a, b)) {
		t.Fatalf("endpoints = %v", got)
	}
	if w := statusOf(p, b.url).Weight; w != 3 {
		t.Fatalf("SRV weight 3 gave weight %d", w)
	}
	for range 40 {
		if code, _, err := get(t, p.Client(), "http://app/"); err != nil || code != 200 {
			t.Fatalf("get: %d %v", code, err)
		}
	}
	if ah, bh := a.hits.Load(), b.hits.Load(); ah != 10 || bh != 30 {
		t.Fatalf("weights 1:3 gave %d:%d", ah, bh)
	}
	bRequests := statusOf(p, b.url).Requests

	// a leaves, c joins, d is a backup (higher priority number).
	z.setSRV(name, srvRec{b: b, weight: 3}, srvRec{b: c, weight: 3}, srvRec{b: d, weight: 1, priority: 20})
	wait.For(t, 5*time.Second, "the pool to follow DNS", func() bool {
		return slices.Equal(endpointURLs(p), sortedURLs(b, c, d))
	})
	if st := statusOf(p, b.url); st.Requests != bRequests {
		t.Fatalf("b stayed in DNS but lost its state: %d requests, had %d", st.Requests, bRequests)
	}
	if !statusOf(p, d.url).Backup || statusOf(p, c.url).Backup {
		t.Fatalf("priorities not mapped to backups: %+v", p.Snapshot())
	}

	// A failing DNS server changes nothing.
	z.mu.Lock()
	z.servfail = true
	seen := z.queries
	z.mu.Unlock()
	wait.For(t, 5*time.Second, "a failed resolution", func() bool {
		z.mu.Lock()
		defer z.mu.Unlock()
		return z.queries > seen+1
	})
	if got := endpointURLs(p); !slices.Equal(got, sortedURLs(b, c, d)) {
		t.Fatalf("a DNS failure changed the endpoints: %v", got)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDNSReresolvedAfterConnectFailure(t *testing.T) {
	z := newZone(t)
	a, b := newBackend(t), newBackend(t)
	const name = "_http._tcp.app.test."
	z.setSRV(name, srvRec{b: a, weight: 1})
	p := newPool(t, Config{DiscoveryInterval: time.Hour},
		WithDiscovery(&DNS{Host: name, SRV: true, Resolver: z.resolver()}))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The instance moves: a dies, b takes its place in DNS.
	z.setSRV(name, srvRec{b: b, weight: 1})
	a.kill()
	_, _, _ = get(t, p.Client(), "http://app/") // fails to connect: asks for a new resolution
	wait.For(t, 5*time.Second, "re-resolution after the connect failure", func() bool {
		return slices.Equal(endpointURLs(p), []string{b.url})
	})
	if code, body, err := get(t, p.Client(), "http://app/"); err != nil || code != 200 || body != b.url {
		t.Fatalf("get: %d %q %v", code, body, err)
	}
}

func TestDNSPlainAddresses(t *testing.T) {
	z := newZone(t)
	a := newBackend(t)
	_, port, _ := net.SplitHostPort(a.ln.Addr().String())
	z.mu.Lock()
	z.a["web.app.test."] = net.IPv4(127, 0, 0, 1)
	z.mu.Unlock()
	d, err := ParseDiscovery("dns://web.app.test.:" + port)
	if err != nil {
		t.Fatal(err)
	}
	d.Resolver = z.resolver()
	for _, network := range []string{"", "ip4"} {
		d.Network = network
		eps, err := d.Discover(context.Background())
		if err != nil || len(eps) != 1 || eps[0].URL != a.url {
			t.Fatalf("discover (%q) = %v, %v", network, eps, err)
		}
	}
	d.Network = "ip6"
	if eps, err := d.Discover(context.Background()); err == nil && len(eps) != 0 {
		t.Fatalf("ip6 found %v", eps)
	}
}

func TestParseDiscovery(t *testing.T) {
	for raw, ok := range map[string]bool{
		"dns://app:8080": true, "dns+https://app:8443": true, "srv://_http._tcp.app.consul": true,
		"dns://app": false, "srv://_http._tcp.app:80": false, "consul://app": false, "dns+ftp://app:1": false,
		"dns://app:8080/path": false, "": false, "srv://:": false, "dns://:80": false,
	} {
		if _, err := ParseDiscovery(raw); (err == nil) != ok {
			t.Errorf("ParseDiscovery(%q) = %v", raw, err)
		}
	}
	if _, err := New(Config{Discovery: "dns://app"}); err == nil {
		t.Error("bad Config.Discovery accepted")
	}
}

type discoverFunc func() []Endpoint

func (f discoverFunc) Discover(context.Context) ([]Endpoint, error) { return f(), nil }

func TestDiscoveryOfManyEndpoints(t *testing.T) {
	gen := 0
	list := func() []Endpoint {
		var eps []Endpoint
		for i := range 1000 {
			eps = append(eps, Endpoint{URL: "http://10." + strconv.Itoa(gen) + "." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1) + ":80"})
		}
		return eps
	}
	p := newPool(t, Config{Policy: PolicyHash, DiscoveryInterval: time.Hour}, WithDiscovery(discoverFunc(list)))
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(p.Snapshot()); n != 1000 {
		t.Fatalf("%d endpoints", n)
	}
	// Every endpoint replaced at once: one table, not a thousand.
	gen = 1
	start := time.Now()
	if err := p.discover(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("replaced in %s", time.Since(start))
	if d := time.Since(start); d > 10*time.Second { // one table per endpoint would take minutes
		t.Fatalf("replacing 1000 endpoints took %s", d)
	}
	eps := endpointURLs(p)
	if len(eps) != 1000 || !strings.HasPrefix(eps[0], "http://10.1.") {
		t.Fatalf("after the change: %d endpoints, first %s", len(eps), eps[0])
	}
}

func TestDNSSRVTargetHiccupKeepsThePool(t *testing.T) {
	z := newZone(t)
	a, b := newBackend(t), newBackend(t)
	const name = "_http._tcp.app.test."
	z.setSRV(name, srvRec{b: a}, srvRec{b: b})
	d := &DNS{Host: name, SRV: true, Network: "ip4", Resolver: z.resolver()}
	ctx := context.Background()

	// One target's address lookup fails for now: the answer is partial,
	// and taken as it is it would drop a healthy endpoint.
	z.mu.Lock()
	z.failing = map[string]bool{z.srv[name][1].Target: true}
	z.mu.Unlock()
	if eps, err := d.Discover(ctx); err == nil {
		t.Fatalf("partial answer %v taken as the whole: a passing DNS failure would remove an endpoint", eps)
	}

	// A target that no longer exists (NXDOMAIN) is gone: the rest is the
	// answer.
	z.mu.Lock()
	z.failing = nil
	delete(z.a, z.srv[name][1].Target)
	z.mu.Unlock()
	eps, err := d.Discover(ctx)
	if err != nil || len(eps) != 1 || eps[0].URL != a.url {
		t.Fatalf("with one target gone: %v, %v; want only %s", eps, err, a.url)
	}
}
