package balancer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
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
func startNode(t *testing.T, cfg ClusterConfig, pools ...*Pool) *node {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Key == "" && !cfg.Insecure {
		cfg.Key = testClusterKey
	}
	buf := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := NewCluster(cfg, pools, WithLogger(log))
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
func outlierPool(t *testing.T, urls ...string) *Pool {
	return newPool(t, Config{
		Name:      "app",
		Endpoints: urls,
		Outlier:   OutlierConfig{ConsecutiveFailures: 3, BaseEjection: 30 * time.Second},
		Retry:     RetryConfig{Attempts: 1},
	})
}

// ejectByFailures sends requests through p until the failing backend's
// endpoint is ejected, and returns when p ejected it.
func ejectByFailures(t *testing.T, p *Pool, url string) time.Time {
	t.Helper()
	client := p.Client()
	for i := 0; i < 100 && statusOf(p, url).State != StateEjected; i++ {
		_, _, _ = get(t, client, "http://app/x")
	}
	s := statusOf(p, url)
	if s.State != StateEjected {
		t.Fatalf("%s not ejected by its failures: %+v", url, s)
	}
	return s.EjectedUntil.Add(-30 * time.Second)
}

func TestClusterEjectionReachesPeerWithin200ms(t *testing.T) {
	bad, ok1, ok2 := newBackend(t), newBackend(t), newBackend(t)
	bad.status.Store(500)
	pa, pb := outlierPool(t, bad.url, ok1.url, ok2.url), outlierPool(t, bad.url, ok1.url, ok2.url)
	a := startNode(t, ClusterConfig{Name: "a"}, pa)
	b := startNode(t, ClusterConfig{Name: "b", Peers: []string{a.LocalAddr()}}, pb)
	wait.For(t, 5*time.Second, "a and b to see each other", func() bool { return aliveCount(a.Cluster) == 2 && aliveCount(b.Cluster) == 2 })

	ejectedAt := ejectByFailures(t, pa, bad.url)
	var seenAt time.Time
	wait.For(t, 2*time.Second, "b to eject the endpoint a ejected", func() bool {
		if statusOf(pb, bad.url).State == StateEjected {
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
	ua, ub := statusOf(pa, bad.url).EjectedUntil, statusOf(pb, bad.url).EjectedUntil
	if d := ub.Sub(ua).Abs(); d > 100*time.Millisecond {
		t.Errorf("b's ejection ends %v apart from a's (%v, %v)", d, ua, ub)
	}
	if s := statusOf(pb, bad.url); s.Ejections != 0 {
		t.Errorf("b counts a peer's ejection as its own: %+v", s)
	}

	// b's pool stops sending to it, and a does not take b's copy back as
	// news of its own (no echo).
	hits := bad.hits.Load()
	client := pb.Client()
	for range 30 {
		if code, _, err := get(t, client, "http://app/x"); err != nil || code != 200 {
			t.Fatalf("b: %d %v", code, err)
		}
	}
	if n := bad.hits.Load() - hits; n != 0 {
		t.Fatalf("b sent %d requests to the endpoint a ejected", n)
	}
	views := b.PeerViews()
	if len(views) != 3 {
		t.Fatalf("b's peer views = %+v, want a's three endpoints", views)
	}
	for _, v := range views {
		want := StateUp
		if v.Endpoint == bad.url {
			want = StateEjected
		}
		if v.Node != "a" || v.Pool != "app" || v.State != want {
			t.Errorf("b's view %+v, want a's %s", v, want)
		}
	}
	for _, v := range a.PeerViews() {
		if v.State != StateUp {
			t.Errorf("a got back a report of its own state from b: %+v", v)
		}
	}
	if sent := b.metrics.sent.Load(); sent != 0 {
		t.Errorf("b sent %d events without a change of its own", sent)
	}
}

func TestClusterHealthDownAndRecoveryPropagate(t *testing.T) {
	x, y := newBackend(t), newBackend(t)
	// a checks its endpoints; b does not, and knows only what a says.
	pa := newPool(t, Config{Name: "app", Endpoints: []string{x.url, y.url}, Health: HealthConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Rise: 1, Fall: 1}})
	pb := newPool(t, Config{Name: "app", Endpoints: []string{x.url, y.url}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pa.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, ClusterConfig{Name: "a"}, pa)
	startNode(t, ClusterConfig{Name: "b", Peers: []string{a.LocalAddr()}}, pb)

	x.health.Store(500)
	wait.For(t, 5*time.Second, "a's checks to take x down", func() bool { return statusOf(pa, x.url).State == StateDown })
	downAt := statusOf(pa, x.url).LastCheck // the failing check (Fall 1)
	wait.For(t, 2*time.Second, "b to take x down", func() bool { return statusOf(pb, x.url).State == StateDown })
	t.Logf("a's failing check to b's down: %v", time.Since(downAt))
	hits := x.hits.Load()
	for range 10 {
		if code, _, err := get(t, pb.Client(), "http://app/x"); err != nil || code != 200 {
			t.Fatalf("b: %d %v", code, err)
		}
	}
	if n := x.hits.Load() - hits; n != 0 {
		t.Fatalf("b sent %d requests to an endpoint a found down", n)
	}

	x.health.Store(0)
	wait.For(t, 5*time.Second, "a's checks to bring x back", func() bool { return statusOf(pa, x.url).State == StateUp })
	upAt := statusOf(pa, x.url).LastCheck // at most the passing check after it (Rise 1)
	wait.For(t, 2*time.Second, "b to bring x back", func() bool { return statusOf(pb, x.url).State == StateUp })
	t.Logf("a's passing check to b's up: at most %v", time.Since(upAt))
	hits = x.hits.Load()
	for range 10 {
		_, _, _ = get(t, pb.Client(), "http://app/x")
	}
	if x.hits.Load() == hits {
		t.Fatal("b sends nothing to x after it recovered")
	}
}

func TestClusterPeersCannotTakeTheLastEndpointsOut(t *testing.T) {
	x, y := newBackend(t), newBackend(t)
	x.status.Store(500)
	y.status.Store(500)
	x.health.Store(500)
	y.health.Store(500)
	// a may eject every endpoint (MaxEjectionPercent 100) and checks
	// "api"; b may eject one of two, whatever its peers report, and takes
	// no endpoint down on their word if that leaves none.
	pa := newPool(t, Config{Name: "app", Endpoints: []string{x.url, y.url},
		Outlier: OutlierConfig{ConsecutiveFailures: 3, BaseEjection: 30 * time.Second, MaxEjectionPercent: 100}, Retry: RetryConfig{Attempts: 1}})
	pb := outlierPool(t, x.url, y.url)
	checked := newPool(t, Config{Name: "api", Endpoints: []string{x.url, y.url}, Health: HealthConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Fall: 1}})
	unchecked := newPool(t, Config{Name: "api", Endpoints: []string{x.url, y.url}})
	a := startNode(t, ClusterConfig{Name: "a"}, pa, checked)
	b := startNode(t, ClusterConfig{Name: "b", Peers: []string{a.LocalAddr()}}, pb, unchecked)
	wait.For(t, 5*time.Second, "two members", func() bool { return aliveCount(b.Cluster) == 2 })

	ejectByFailures(t, pa, x.url)
	ejectByFailures(t, pa, y.url)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := checked.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 2*time.Second, "b to hear of both ejections and both downs", func() bool {
		n := 0
		for _, v := range b.PeerViews() {
			if (v.Pool == "app" && v.State == StateEjected) || (v.Pool == "api" && v.State == StateDown) {
				n++
			}
		}
		return n == 4
	})
	count := func(p *Pool, state State) int {
		n := 0
		for _, s := range p.Snapshot() {
			if s.State == state {
				n++
			}
		}
		return n
	}
	if n := count(pb, StateEjected); n != 1 {
		t.Fatalf("b ejected %d of 2 endpoints on a's word, want 1: %+v", n, pb.Snapshot())
	}
	if n := count(unchecked, StateDown); n != 1 {
		t.Fatalf("b took %d of 2 endpoints down on a's word, want 1: %+v", n, unchecked.Snapshot())
	}
	for _, p := range []*Pool{pb, unchecked} {
		if err := p.Check(context.Background()); err != nil {
			t.Fatalf("b's pool %s not ready: %v", p.Name(), err)
		}
	}
}

func TestClusterRejectsNodesWithoutTheKey(t *testing.T) {
	x, y := newBackend(t), newBackend(t)
	pb := outlierPool(t, x.url, y.url)
	b := startNode(t, ClusterConfig{Name: "b"}, pb)
	otherKey := base64.StdEncoding.EncodeToString([]byte("another key of 32 bytes, really!"))
	for _, cfg := range []ClusterConfig{
		{Name: "wrong-key", Key: otherKey, Peers: []string{b.LocalAddr()}},
		{Name: "no-key", Insecure: true, Peers: []string{b.LocalAddr()}},
	} {
		t.Run(cfg.Name, func(t *testing.T) {
			// The intruder starts (joining fails softly) but stays alone.
			m := startNode(t, cfg, outlierPool(t, x.url, y.url))
			if n := aliveCount(m.Cluster); n != 1 {
				t.Fatalf("intruder sees %d members", n)
			}
			// It sends b a report straight to its address, as a member
			// would: b drops it undecrypted.
			msg, _ := json.Marshal(wireReport{Origin: cfg.Name, Epoch: 1, Seq: 1, Pool: "app", Endpoint: x.url, Ejected: int64(time.Minute)})
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
			if s := statusOf(pb, x.url); s.State != StateUp {
				t.Fatalf("intruder changed b's pool: %+v", s)
			}
			if n := b.metrics.received.Load(); n != 0 {
				t.Fatalf("b received %d reports", n)
			}
		})
	}
}

func TestClusterRestartedNodeGetsPeersView(t *testing.T) {
	bad, ok := newBackend(t), newBackend(t)
	bad.status.Store(500)
	pa := outlierPool(t, bad.url, ok.url)
	a := startNode(t, ClusterConfig{Name: "a"}, pa)
	b1, err := NewCluster(ClusterConfig{Name: "b", Listen: "127.0.0.1:0", Key: testClusterKey, Peers: []string{a.LocalAddr()}}, []*Pool{outlierPool(t, bad.url, ok.url)})
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
	ejectByFailures(t, pa, bad.url)
	pb := outlierPool(t, bad.url, ok.url)
	startNode(t, ClusterConfig{Name: "b", Peers: []string{a.LocalAddr()}}, pb)
	// The join's state exchange is done when Start returns.
	s := statusOf(pb, bad.url)
	if s.State != StateEjected {
		t.Fatalf("restarted b does not have a's ejection: %+v", s)
	}
	if d := s.EjectedUntil.Sub(statusOf(pa, bad.url).EjectedUntil).Abs(); d > 100*time.Millisecond {
		t.Fatalf("restarted b's ejection ends %v apart from a's", d)
	}
	wait.For(t, 5*time.Second, "a to see b back", func() bool { return memberState(a.Cluster, "b") == "alive" })
}

func TestClusterCrashedNodeIsDeclaredDead(t *testing.T) {
	x := newBackend(t)
	a := startNode(t, ClusterConfig{Name: "a"}, outlierPool(t, x.url))
	b := startNode(t, ClusterConfig{Name: "b", Peers: []string{a.LocalAddr()}}, outlierPool(t, x.url))
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
const clusterNodeEnv = "THREETIER_BALANCER_CLUSTER_NODE"

// TestClusterNodeProcess is, in the child, a node that checks the backend
// named by clusterNodeEnv+"_BACKEND" and prints its name once started; in
// the parent it starts that child, sees its report, SIGKILLs it and
// measures how long until the survivor declares it dead.
func TestClusterNodeProcess(t *testing.T) {
	if peer := os.Getenv(clusterNodeEnv); peer != "" {
		runClusterNodeProcess(peer, os.Getenv(clusterNodeEnv+"_BACKEND"))
		return
	}
	x, y := newBackend(t), newBackend(t)
	x.health.Store(500) // the child's checks find it down
	pa := newPool(t, Config{Name: "app", Endpoints: []string{x.url, y.url}})
	a := startNode(t, ClusterConfig{Name: "a"}, pa)

	line, proc := startChild(t, []string{"-test.run=^TestClusterNodeProcess$", "-test.count=1"},
		clusterNodeEnv+"="+a.LocalAddr(), clusterNodeEnv+"_BACKEND="+x.url)
	if !strings.HasPrefix(line, "node ") {
		t.Fatalf("child: %q", line)
	}
	name := strings.TrimSpace(strings.TrimPrefix(line, "node "))

	wait.For(t, 5*time.Second, "a to see the child", func() bool { return memberState(a.Cluster, name) == "alive" })
	wait.For(t, 5*time.Second, "the child's down to reach a", func() bool { return statusOf(pa, x.url).State == StateDown })

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
	wait.For(t, time.Second, "a to lift the dead node's down", func() bool { return statusOf(pa, x.url).State == StateUp })
}

func runClusterNodeProcess(peer, backend string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := New(Config{Name: "app", Endpoints: []string{backend}, Health: HealthConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Fall: 1}})
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		fail(err)
	}
	c, err := NewCluster(ClusterConfig{Name: fmt.Sprintf("child-%d", os.Getpid()), Listen: "127.0.0.1:0", Key: testClusterKey, Peers: []string{peer}}, []*Pool{p})
	if err != nil {
		fail(err)
	}
	if err := c.Start(ctx); err != nil {
		fail(err)
	}
	fmt.Println("node", c.NodeName())
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent goes
	os.Exit(0)
}

func TestClusterConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  ClusterConfig
		want string
	}{
		{ClusterConfig{}, "Key"},
		{ClusterConfig{Key: "not base64!"}, "Key: not base64"},
		{ClusterConfig{Key: base64.StdEncoding.EncodeToString([]byte("short"))}, "5 bytes"},
		{ClusterConfig{Key: testClusterKey, Insecure: true}, "Insecure"},
		{ClusterConfig{Insecure: true, Listen: "localhost:7946"}, "Listen"},
		{ClusterConfig{Insecure: true, Listen: "127.0.0.1"}, "Listen"},
		{ClusterConfig{Insecure: true, Listen: "127.0.0.1:70000"}, "bad port"},
		{ClusterConfig{Insecure: true, Advertise: ":7946"}, "Advertise"},
		{ClusterConfig{Insecure: true, Peers: []string{"10.0.0.2"}}, "Peers[0]"},
		{ClusterConfig{Insecure: true, JoinRetry: -time.Second}, "JoinRetry"},
		{ClusterConfig{Insecure: true, ProbeInterval: time.Millisecond}, "ProbeInterval"},
	}
	for _, tt := range tests {
		_, err := NewCluster(tt.cfg, nil)
		var ce *tier.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewCluster(%+v) = %v, want a ConfigError about %q", tt.cfg, err, tt.want)
		}
	}
	// A bad key is named, never echoed.
	err := ClusterConfig{Key: "c2VjcmV0"}.Validate()
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("Validate = %v, want an error that does not show the key", err)
	}
	// Two errors come back joined.
	err = ClusterConfig{Listen: "x", JoinRetry: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "Listen") || !strings.Contains(err.Error(), "JoinRetry") || !strings.Contains(err.Error(), "Key") {
		t.Errorf("Validate = %v, want Listen, JoinRetry and Key", err)
	}
	p := outlierPool(t, "http://127.0.0.1:1")
	if _, err := NewCluster(ClusterConfig{Insecure: true}, []*Pool{p, p}); err == nil {
		t.Error("two pools of one name accepted")
	}
}

func TestClusterStartsAloneAndJoinsLater(t *testing.T) {
	x := newBackend(t)
	// b's peer is not up yet: b starts alone and keeps trying.
	a := startNode(t, ClusterConfig{Name: "a"}, outlierPool(t, x.url))
	addr := a.LocalAddr()
	a.crash()
	b := startNode(t, ClusterConfig{Name: "b", Peers: []string{addr}, JoinRetry: 20 * time.Millisecond}, outlierPool(t, x.url))
	if err := b.Check(context.Background()); err != nil {
		t.Fatalf("b alone not ready: %v", err)
	}
	if !strings.Contains(b.log.String(), "no peer reached") {
		t.Fatalf("b did not say it runs alone:\n%s", b.log.String())
	}
	startNode(t, ClusterConfig{Name: "a2", Listen: addr}, outlierPool(t, x.url))
	wait.For(t, 5*time.Second, "b to join a2 in the background", func() bool { return memberState(b.Cluster, "a2") == "alive" })
}

// TestPeerEjectionIsCapped: a peer (buggy, or holding the key) cannot
// eject an endpoint for longer than the pool's own MaxEjection.
func TestPeerEjectionIsCapped(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	p := newPool(t, Config{Endpoints: []string{a.url, b.url}, Outlier: OutlierConfig{MaxEjection: time.Minute}})
	years := time.Now().Add(10 * 365 * 24 * time.Hour).UnixNano()
	if !p.applyPeers(a.url, years, false) {
		t.Fatal("the peer's ejection was not applied")
	}
	st := statusOf(p, a.url)
	if st.State != StateEjected || time.Until(st.EjectedUntil) > time.Minute {
		t.Fatalf("ejected until %s (state %s), want at most a minute from now", st.EjectedUntil, st.State)
	}
}

// TestClusterPairStoppedTogether stops both nodes of a pair at once, as an
// orchestrator does: each one's leave can no longer reach a peer that is
// leaving too, which is normal, not a failed stop.
func TestClusterPairStoppedTogether(t *testing.T) {
	x := newBackend(t)
	a := startNode(t, ClusterConfig{Name: "a"}, outlierPool(t, x.url))
	b := startNode(t, ClusterConfig{Name: "b", Peers: []string{a.LocalAddr()}}, outlierPool(t, x.url))
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
