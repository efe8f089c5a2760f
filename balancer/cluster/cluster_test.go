package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/internal/balancertest"
	"github.com/threetier/threetier/internal/child"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

// testClusterKey is a fixed AES-256 key for the tests' clusters.
var testClusterKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// node is a cluster node under test with the log it wrote.
type node struct {
	*Cluster
	log *syncbuf.Buffer
}

// startNode starts a cluster node on a free loopback port over pools; it is
// stopped when the test ends.
func startNode(t *testing.T, cfg Config, pools ...*balancer.Pool) *node {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Key == "" && !cfg.Insecure {
		cfg.Key = testClusterKey
	}
	buf := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(cfg, pools, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", c.cfg.Name, err)
		}
	})
	return &node{c, buf}
}

// crash ends a node the way SIGKILL would, as far as its peers can tell:
// gossip stops at once, with no leave message.
func (c *Cluster) crash() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	r := c.run
	if r == nil {
		return
	}
	c.run = nil
	for _, unsub := range r.unsubs {
		unsub()
	}
	r.cancel()
	r.wg.Wait()
	c.ml.Store(nil)
	_ = r.ml.Shutdown()
}

func memberState(c *Cluster, name string) string {
	for _, m := range c.Members() {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

func aliveCount(c *Cluster) int {
	n := 0
	for _, m := range c.Members() {
		if m.State == "alive" {
			n++
		}
	}
	return n
}

// outlierPool is a pool that ejects an endpoint for 30s after three
// failures in a row, and never retries (so that each request is one
// attempt).
func outlierPool(t *testing.T, urls ...string) *balancer.Pool {
	return balancertest.NewPool(t, balancer.Config{
		Name:      "app",
		Endpoints: urls,
		Outlier:   balancer.OutlierConfig{ConsecutiveFailures: 3, BaseEjection: 30 * time.Second},
		Retry:     balancer.RetryConfig{Attempts: 1},
	})
}

// ejectByFailures sends requests through p until the failing backend's
// endpoint is ejected, and returns when p ejected it.
func ejectByFailures(t *testing.T, p *balancer.Pool, url string) time.Time {
	t.Helper()
	client := p.Client()
	for i := 0; i < 100 && balancertest.StatusOf(p, url).State != balancer.StateEjected; i++ {
		_, _, _ = balancertest.Get(t, client, "http://app/x")
	}
	s := balancertest.StatusOf(p, url)
	if s.State != balancer.StateEjected {
		t.Fatalf("%s not ejected by its failures: %+v", url, s)
	}
	return s.EjectedUntil.Add(-30 * time.Second)
}

func TestClusterEjectionReachesPeerWithin200ms(t *testing.T) {
	bad, ok1, ok2 := balancertest.NewBackend(t), balancertest.NewBackend(t), balancertest.NewBackend(t)
	bad.Status.Store(500)
	pa, pb := outlierPool(t, bad.URL, ok1.URL, ok2.URL), outlierPool(t, bad.URL, ok1.URL, ok2.URL)
	a := startNode(t, Config{Name: "a"}, pa)
	b := startNode(t, Config{Name: "b", Peers: []string{a.LocalAddr()}}, pb)
	wait.For(t, 5*time.Second, "a and b to see each other", func() bool { return aliveCount(a.Cluster) == 2 && aliveCount(b.Cluster) == 2 })

	ejectedAt := ejectByFailures(t, pa, bad.URL)
	var seenAt time.Time
	wait.For(t, 2*time.Second, "b to eject the endpoint a ejected", func() bool {
		if balancertest.StatusOf(pb, bad.URL).State == balancer.StateEjected {
			seenAt = time.Now()
			return true
		}
		return false
	})
	took := seenAt.Sub(ejectedAt)
	t.Logf("ejection on a seen on b after %v", took)
	if took >= 200*time.Millisecond {
		t.Fatalf("ejection took %v to reach b, want < 200ms", took)
	}
	ua, ub := balancertest.StatusOf(pa, bad.URL).EjectedUntil, balancertest.StatusOf(pb, bad.URL).EjectedUntil
	if d := ub.Sub(ua).Abs(); d > 100*time.Millisecond {
		t.Errorf("b's ejection ends %v apart from a's (%v, %v)", d, ua, ub)
	}
	if s := balancertest.StatusOf(pb, bad.URL); s.Ejections != 0 {
		t.Errorf("b counts a peer's ejection as its own: %+v", s)
	}

	// b's pool stops sending to it, and a does not take b's copy back as
	// news of its own (no echo).
	hits := bad.Hits.Load()
	client := pb.Client()
	for range 30 {
		if code, _, err := balancertest.Get(t, client, "http://app/x"); err != nil || code != 200 {
			t.Fatalf("b: %d %v", code, err)
		}
	}
	if n := bad.Hits.Load() - hits; n != 0 {
		t.Fatalf("b sent %d requests to the endpoint a ejected", n)
	}
	views := b.PeerViews()
	if len(views) != 3 {
		t.Fatalf("b's peer views = %+v, want a's three endpoints", views)
	}
	for _, v := range views {
		want := balancer.StateUp
		if v.Endpoint == bad.URL {
			want = balancer.StateEjected
		}
		if v.Node != "a" || v.Pool != "app" || v.State != want {
			t.Errorf("b's view %+v, want a's %s", v, want)
		}
	}
	for _, v := range a.PeerViews() {
		if v.State != balancer.StateUp {
			t.Errorf("a got back a report of its own state from b: %+v", v)
		}
	}
	if sent := b.metrics.sent.Load(); sent != 0 {
		t.Errorf("b sent %d events without a change of its own", sent)
	}
}

func TestClusterHealthDownAndRecoveryPropagate(t *testing.T) {
	x, y := balancertest.NewBackend(t), balancertest.NewBackend(t)
	// a checks its endpoints; b does not, and knows only what a says.
	pa := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{x.URL, y.URL}, Health: balancer.HealthConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Rise: 1, Fall: 1}})
	pb := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{x.URL, y.URL}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pa.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, Config{Name: "a"}, pa)
	startNode(t, Config{Name: "b", Peers: []string{a.LocalAddr()}}, pb)

	x.Health.Store(500)
	wait.For(t, 5*time.Second, "a's checks to take x down", func() bool { return balancertest.StatusOf(pa, x.URL).State == balancer.StateDown })
	downAt := balancertest.StatusOf(pa, x.URL).LastCheck // the failing check (Fall 1)
	wait.For(t, 2*time.Second, "b to take x down", func() bool { return balancertest.StatusOf(pb, x.URL).State == balancer.StateDown })
	t.Logf("a's failing check to b's down: %v", time.Since(downAt))
	hits := x.Hits.Load()
	for range 10 {
		if code, _, err := balancertest.Get(t, pb.Client(), "http://app/x"); err != nil || code != 200 {
			t.Fatalf("b: %d %v", code, err)
		}
	}
	if n := x.Hits.Load() - hits; n != 0 {
		t.Fatalf("b sent %d requests to an endpoint a found down", n)
	}

	x.Health.Store(0)
	wait.For(t, 5*time.Second, "a's checks to bring x back", func() bool { return balancertest.StatusOf(pa, x.URL).State == balancer.StateUp })
	upAt := balancertest.StatusOf(pa, x.URL).LastCheck // at most the passing check after it (Rise 1)
	wait.For(t, 2*time.Second, "b to bring x back", func() bool { return balancertest.StatusOf(pb, x.URL).State == balancer.StateUp })
	t.Logf("a's passing check to b's up: at most %v", time.Since(upAt))
	hits = x.Hits.Load()
	for range 10 {
		_, _, _ = balancertest.Get(t, pb.Client(), "http://app/x")
	}
	if x.Hits.Load() == hits {
		t.Fatal("b sends nothing to x after it recovered")
	}
}

func TestClusterPeersCannotTakeTheLastEndpointsOut(t *testing.T) {
	x, y := balancertest.NewBackend(t), balancertest.NewBackend(t)
	x.Status.Store(500)
	y.Status.Store(500)
	x.Health.Store(500)
	y.Health.Store(500)
	// a may eject every endpoint (MaxEjectionPercent 100) and checks
	// "api"; b may eject one of two, whatever its peers report, and takes
	// no endpoint down on their word if that leaves none.
	pa := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{x.URL, y.URL},
		Outlier: balancer.OutlierConfig{ConsecutiveFailures: 3, BaseEjection: 30 * time.Second, MaxEjectionPercent: 100}, Retry: balancer.RetryConfig{Attempts: 1}})
	pb := outlierPool(t, x.URL, y.URL)
	checked := balancertest.NewPool(t, balancer.Config{Name: "api", Endpoints: []string{x.URL, y.URL}, Health: balancer.HealthConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Fall: 1}})
	unchecked := balancertest.NewPool(t, balancer.Config{Name: "api", Endpoints: []string{x.URL, y.URL}})
	a := startNode(t, Config{Name: "a"}, pa, checked)
	b := startNode(t, Config{Name: "b", Peers: []string{a.LocalAddr()}}, pb, unchecked)
	wait.For(t, 5*time.Second, "two members", func() bool { return aliveCount(b.Cluster) == 2 })

	ejectByFailures(t, pa, x.URL)
	ejectByFailures(t, pa, y.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := checked.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Second, "b to hear of both ejections and both downs", func() bool {
		n := 0
		for _, v := range b.PeerViews() {
			if (v.Pool == "app" && v.State == balancer.StateEjected) || (v.Pool == "api" && v.State == balancer.StateDown) {
				n++
			}
		}
		return n == 4
	})
	count := func(p *balancer.Pool, state balancer.State) int {
		n := 0
		for _, s := range p.Snapshot() {
			if s.State == state {
				n++
			}
		}
		return n
	}
	if n := count(pb, balancer.StateEjected); n != 1 {
		t.Fatalf("b ejected %d of 2 endpoints on a's word, want 1: %+v", n, pb.Snapshot())
	}
	if n := count(unchecked, balancer.StateDown); n != 1 {
		t.Fatalf("b took %d of 2 endpoints down on a's word, want 1: %+v", n, unchecked.Snapshot())
	}
	for _, p := range []*balancer.Pool{pb, unchecked} {
		if err := p.Check(context.Background()); err != nil {
			t.Fatalf("b's pool %s not ready: %v", p.Name(), err)
		}
	}
}

func TestClusterRejectsNodesWithoutTheKey(t *testing.T) {
	x, y := balancertest.NewBackend(t), balancertest.NewBackend(t)
	pb := outlierPool(t, x.URL, y.URL)
	b := startNode(t, Config{Name: "b"}, pb)
	otherKey := base64.StdEncoding.EncodeToString([]byte("another key of 32 bytes, really!"))
	for _, cfg := range []Config{
		{Name: "wrong-key", Key: otherKey, Peers: []string{b.LocalAddr()}},
		{Name: "no-key", Insecure: true, Peers: []string{b.LocalAddr()}},
	} {
		t.Run(cfg.Name, func(t *testing.T) {
			// The intruder starts (joining fails softly) but stays alone.
			m := startNode(t, cfg, outlierPool(t, x.URL, y.URL))
			if n := aliveCount(m.Cluster); n != 1 {
				t.Fatalf("intruder sees %d members", n)
			}
			// It sends b a report straight to its address, as a member
			// would: b drops it undecrypted.
			msg, _ := json.Marshal(wireReport{Origin: cfg.Name, Epoch: 1, Seq: 1, Pool: "app", Endpoint: x.URL, Ejected: int64(time.Minute)})
			before := strings.Count(b.log.String(), "Decrypt packet failed")
			if err := m.ml.Load().SendToAddress(memberlist.Address{Addr: b.LocalAddr(), Name: "b"}, append([]byte{msgReport}, msg...)); err != nil {
				t.Fatal(err)
			}
			wait.For(t, 5*time.Second, "b to drop the intruder's packet", func() bool {
				return strings.Count(b.log.String(), "Decrypt packet failed") > before
			})
			if n := aliveCount(b.Cluster); n != 1 {
				t.Fatalf("b lets the intruder in: %+v", b.Members())
			}
			if v := b.PeerViews(); len(v) != 0 {
				t.Fatalf("b took the intruder's state: %+v", v)
			}
			if s := balancertest.StatusOf(pb, x.URL); s.State != balancer.StateUp {
				t.Fatalf("intruder changed b's pool: %+v", s)
			}
			if n := b.metrics.received.Load(); n != 0 {
				t.Fatalf("b received %d reports", n)
			}
		})
	}
}

func TestClusterRestartedNodeGetsPeersView(t *testing.T) {
	bad, ok := balancertest.NewBackend(t), balancertest.NewBackend(t)
	bad.Status.Store(500)
	pa := outlierPool(t, bad.URL, ok.URL)
	a := startNode(t, Config{Name: "a"}, pa)
	b1, err := New(Config{Name: "b", Listen: "127.0.0.1:0", Key: testClusterKey, Peers: []string{a.LocalAddr()}}, []*balancer.Pool{outlierPool(t, bad.URL, ok.URL)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "a to see b", func() bool { return memberState(a.Cluster, "b") == "alive" })
	if err := b1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "a to see b leave", func() bool { return memberState(a.Cluster, "b") == "left" })

	// While b is away, a ejects an endpoint; b comes back under its name on
	// another port, with a fresh pool.
	ejectByFailures(t, pa, bad.URL)
	pb := outlierPool(t, bad.URL, ok.URL)
	startNode(t, Config{Name: "b", Peers: []string{a.LocalAddr()}}, pb)
	// The join's state exchange is done when Start returns.
	s := balancertest.StatusOf(pb, bad.URL)
	if s.State != balancer.StateEjected {
		t.Fatalf("restarted b does not have a's ejection: %+v", s)
	}
	if d := s.EjectedUntil.Sub(balancertest.StatusOf(pa, bad.URL).EjectedUntil).Abs(); d > 100*time.Millisecond {
		t.Fatalf("restarted b's ejection ends %v apart from a's", d)
	}
	wait.For(t, 5*time.Second, "a to see b back", func() bool { return memberState(a.Cluster, "b") == "alive" })
}

func TestClusterCrashedNodeIsDeclaredDead(t *testing.T) {
	x := balancertest.NewBackend(t)
	a := startNode(t, Config{Name: "a"}, outlierPool(t, x.URL))
	b := startNode(t, Config{Name: "b", Peers: []string{a.LocalAddr()}}, outlierPool(t, x.URL))
	wait.For(t, 5*time.Second, "a to see b", func() bool { return memberState(a.Cluster, "b") == "alive" })
	start := time.Now()
	b.crash()
	wait.For(t, 5*time.Second, "a to suspect b", func() bool { s := memberState(a.Cluster, "b"); return s == "suspect" || s == "dead" })
	wait.For(t, 10*time.Second, "a to declare b dead", func() bool { return memberState(a.Cluster, "b") == "dead" })
	t.Logf("crashed node declared dead after %v", time.Since(start))
	if n := aliveCount(a.Cluster); n != 1 {
		t.Fatalf("a counts %d alive", n)
	}
}

// clusterNodeEnv makes TestClusterNodeProcess a cluster node in a process
// of its own: the value is the peer to join.
const clusterNodeEnv = "THREETIER_TEST_CLUSTER_NODE"

// TestClusterNodeProcess is, in the child, a node that checks the backend
// named by clusterNodeEnv+"_BACKEND" and prints its name once started; in
// the parent it starts that child, sees its report, SIGKILLs it and
// measures how long until the survivor declares it dead.
func TestClusterNodeProcess(t *testing.T) {
	if peer := os.Getenv(clusterNodeEnv); peer != "" {
		runClusterNodeProcess(peer, os.Getenv(clusterNodeEnv+"_BACKEND"))
		return
	}
	x, y := balancertest.NewBackend(t), balancertest.NewBackend(t)
	x.Health.Store(500) // the child's checks find it down
	pa := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{x.URL, y.URL}})
	a := startNode(t, Config{Name: "a"}, pa)

	cmd := exec.Command(os.Args[0], "-test.run=^TestClusterNodeProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), clusterNodeEnv+"="+a.LocalAddr(), clusterNodeEnv+"_BACKEND="+x.URL)
	cmd.Stderr = os.Stderr
	line, proc := child.Start(t, cmd), cmd.Process
	if !strings.HasPrefix(line, "node ") {
		t.Fatalf("child: %q", line)
	}
	name := strings.TrimSpace(strings.TrimPrefix(line, "node "))

	wait.For(t, 5*time.Second, "a to see the child", func() bool { return memberState(a.Cluster, name) == "alive" })
	wait.For(t, 5*time.Second, "the child's down to reach a", func() bool { return balancertest.StatusOf(pa, x.URL).State == balancer.StateDown })

	if err := proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	wait.For(t, 10*time.Second, "a to declare the killed child dead", func() bool { return memberState(a.Cluster, name) == "dead" })
	took := time.Since(killed)
	t.Logf("SIGKILLed node declared dead after %v", took)
	if took > 5*time.Second {
		t.Fatalf("dead after %v, want within 5s", took)
	}
	// Nobody is left to report x up: a stops taking the dead node's word.
	wait.For(t, time.Second, "a to lift the dead node's down", func() bool { return balancertest.StatusOf(pa, x.URL).State == balancer.StateUp })
}

func runClusterNodeProcess(peer, backend string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := balancer.New(balancer.Config{Name: "app", Endpoints: []string{backend}, Health: balancer.HealthConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Fall: 1}})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		fail(err)
	}
	c, err := New(Config{Name: fmt.Sprintf("child-%d", os.Getpid()), Listen: "127.0.0.1:0", Key: testClusterKey, Peers: []string{peer}}, []*balancer.Pool{p})
	if err != nil {
		fail(err)
	}
	if err := c.Start(ctx); err != nil {
		fail(err)
	}
	fmt.Println("node", c.Name())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent goes
	os.Exit(0)
}

func TestClusterConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Key"},
		{Config{Key: "not base64!"}, "Key: not base64"},
		{Config{Key: base64.StdEncoding.EncodeToString([]byte("short"))}, "5 bytes"},
		{Config{Key: testClusterKey, Insecure: true}, "Insecure"},
		{Config{Insecure: true, Listen: "localhost:7946"}, "Listen"},
		{Config{Insecure: true, Listen: "127.0.0.1"}, "Listen"},
		{Config{Insecure: true, Listen: "127.0.0.1:70000"}, "bad port"},
		{Config{Insecure: true, Advertise: ":7946"}, "Advertise"},
		{Config{Insecure: true, Peers: []string{"10.0.0.2"}}, "Peers[0]"},
		{Config{Insecure: true, JoinRetry: -time.Second}, "JoinRetry"},
		{Config{Insecure: true, ProbeInterval: time.Millisecond}, "ProbeInterval"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, nil)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want a ConfigError about %q", tt.cfg, err, tt.want)
		}
	}
	// A bad key is named, never echoed.
	err := Config{Key: "c2VjcmV0"}.Validate()
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("Validate = %v, want an error that does not show the key", err)
	}
	// Two errors come back joined.
	err = Config{Listen: "x", JoinRetry: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "Listen") || !strings.Contains(err.Error(), "JoinRetry") || !strings.Contains(err.Error(), "Key") {
		t.Errorf("Validate = %v, want Listen, JoinRetry and Key", err)
	}
	p := outlierPool(t, "http://127.0.0.1:1")
	if _, err := New(Config{Insecure: true}, []*balancer.Pool{p, p}); err == nil {
		t.Error("two pools of one name accepted")
	}
}

func TestClusterStartsAloneAndJoinsLater(t *testing.T) {
	x := balancertest.NewBackend(t)
	// b's peer is not up yet: b starts alone and keeps trying.
	a := startNode(t, Config{Name: "a"}, outlierPool(t, x.URL))
	addr := a.LocalAddr()
	a.crash()
	b := startNode(t, Config{Name: "b", Peers: []string{addr}, JoinRetry: 20 * time.Millisecond}, outlierPool(t, x.URL))
	if err := b.Check(context.Background()); err != nil {
		t.Fatalf("b alone not ready: %v", err)
	}
	if !strings.Contains(b.log.String(), "no peer reached") {
		t.Fatalf("b did not say it runs alone:\n%s", b.log.String())
	}
	startNode(t, Config{Name: "a2", Listen: addr}, outlierPool(t, x.URL))
	wait.For(t, 5*time.Second, "b to join a2 in the background", func() bool { return memberState(b.Cluster, "a2") == "alive" })
}

// TestClusterPairStoppedTogether stops both nodes of a pair at once, as an
// orchestrator does: each one's leave can no longer reach a peer that is
// leaving too, which is normal, not a failed stop.
func TestClusterPairStoppedTogether(t *testing.T) {
	x := balancertest.NewBackend(t)
	a := startNode(t, Config{Name: "a"}, outlierPool(t, x.URL))
	b := startNode(t, Config{Name: "b", Peers: []string{a.LocalAddr()}}, outlierPool(t, x.URL))
	wait.For(t, 5*time.Second, "a to see b", func() bool { return memberState(a.Cluster, "b") == "alive" })
	wait.For(t, 5*time.Second, "b to see a", func() bool { return memberState(b.Cluster, "a") == "alive" })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	start := time.Now()
	for _, n := range []*node{a, b} {
		go func() { errs <- n.Stop(ctx) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("stopped together: %v", err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the pair took %v to stop", took)
	}
	for _, n := range []*node{a, b} {
		if logs := n.log.String(); strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "level=WARN") {
			t.Errorf("a normal stop logged a problem:\n%s", logs)
		}
	}
}

// TestJoinAfterStart: a node started alone joins a peer whose address is
// known only once that peer runs; Join refuses a bad address and a node
// that is not running.
func TestJoinAfterStart(t *testing.T) {
	a := startNode(t, Config{Name: "a"})
	b := startNode(t, Config{Name: "b"})
	if err := b.Join("no-port"); err == nil {
		t.Error("Join(no-port): no error")
	}
	if err := b.Join(a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "a and b to see each other", func() bool { return aliveCount(a.Cluster) == 2 && aliveCount(b.Cluster) == 2 })
	idle, err := New(Config{Listen: "127.0.0.1:0", Key: testClusterKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Join(a.LocalAddr()); !errors.Is(err, ErrStopped) {
		t.Errorf("Join before Start: %v, want ErrStopped", err)
	}
}
