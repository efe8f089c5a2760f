// Package cluster joins front doors (balancer.Proxy nodes) into one
// cluster over memberlist's SWIM gossip, so that what one node learns of
// its pools' endpoints (ejections, health checks going down and up) and of
// its clients (rate limits, blocks) holds on every node within
// milliseconds. A node is a tier.Tier; requests never wait on it.
//
// It is its own package so that programs that only balance (a web tier
// over its app instances) do not link memberlist.
package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/ratelimit"
	"github.com/threetier/threetier/internal/obs"
	"github.com/threetier/threetier/tier"
)

// Member is one node of a Cluster as this node sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is the node's gossip address (host:port).
	Addr string `json:"addr"`
	// State is "alive", "suspect", "dead" or "left".
	State string `json:"state"`
	// Self marks this node.
	Self bool `json:"self,omitempty"`
}

// PeerView is what one peer last reported about one endpoint of one pool.
type PeerView struct {
	Node     string         `json:"node"`
	Pool     string         `json:"pool"`
	Endpoint string         `json:"endpoint"`
	State    balancer.State `json:"state"`
	Until    time.Time      `json:"until,omitzero"` // end of an ejection
	Updated  time.Time      `json:"updated"`
}

var (
	_ tier.Tier    = (*Cluster)(nil)
	_ tier.Checker = (*Cluster)(nil)
)

// Cluster joins balancer nodes (front doors) into one cluster over
// memberlist's SWIM gossip, encrypted with a shared key, and shares what each
// node learns about the endpoints of its pools with the nodes that have a
// pool of the same name: ejections (sent as the time left, so that clocks
// need not agree), their end, and active health checks going down and up.
// A change is sent to every live peer the moment it happens and repeated by
// gossip, so that a peer avoids an ejected endpoint within milliseconds; a
// joining node gets its peers' whole view at once. What peers report is
// applied under the pool's own limits (see balancer.Pool.ApplyPeers): the
// cluster never takes the last endpoints out, and a node's own
// observations win over hearsay.
//
// A Cluster is a tier.Tier: Start binds and joins, Stop leaves. Requests
// never wait on it: pools balance on their own, with or without peers.
type Cluster struct {
	cfg     Config
	key     []byte
	log     *slog.Logger
	pools   map[string]*balancer.Pool
	metrics *clusterMetrics
	limiter *ratelimit.Limiter // shared with the peers; nil for none

	runMu sync.Mutex // serializes Start and Stop
	run   *clusterRun

	// ml is the running memberlist (nil when stopped), for the readers
	// (Members, LocalAddr, Check) that must not wait on Start or Stop.
	ml atomic.Pointer[memberlist.Memberlist]

	// outMu guards this node's own reports and the outbox. A pool's
	// observer takes it with the pool's mu held, so that whoever holds it
	// must never wait for a pool (nor for viewMu).
	outMu  sync.Mutex
	own    map[endpointKey]*ownReport
	outbox []queued
	seq    uint64
	kick   chan struct{} // wakes the sender; buffered

	// members counts the live members, self included, as memberlist's
	// events tell: the gossip queue's retransmit count, read where
	// memberlist may hold its own locks.
	members atomic.Int32

	// viewMu guards what peers reported. It is taken before a pool's mu
	// (applying reports), never after.
	viewMu   sync.Mutex
	self     string // this node's name while it runs
	reports  map[reportKey]*peerReport
	seen     map[endpointKey]bool // every endpoint ever reported
	departed map[string]departure // members dead or gone, by name
	leaving  map[string]bool      // members that said they are leaving
	epochs   map[string]int64     // latest life of each origin

	// ackMu guards lastAck: when each member last answered this node's
	// probe, which tells a suspect member (memberlist does not say).
	ackMu   sync.Mutex
	lastAck map[string]time.Time
}

// clusterRun is what exists between Start and Stop.
type clusterRun struct {
	ml       *memberlist.Memberlist
	queue    *memberlist.TransmitLimitedQueue
	name     string
	epoch    int64 // when this life of the node began: orders its reports
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	unsubs   []func()
	localAdr string

	// peersMu guards peers: the Peers, then those given to Join, which
	// joinLoop tries while the node is alone. looping says it runs.
	peersMu sync.Mutex
	peers   []string
	looping bool
}

type departure struct {
	addr  string
	state string
	at    time.Time
}

// ErrStarted is returned by Start on a node already running.
var ErrStarted = errors.New("cluster: already started")

// ErrStopped is Check's answer for a node that is not running.
var ErrStopped = errors.New("cluster: not running")

// departedRetention is how long Members lists a node that died or left.
const departedRetention = 10 * time.Minute

// New builds a node over pools; pools of different nodes share state when
// their names match. Its options are WithLogger, WithRegistry (the
// threetier_balancer_cluster_* metrics; one Cluster per registry) and
// WithRateLimiter (the front door's limits, shared with the peers). It
// returns a *tier.ConfigError (or several, joined) for a bad setting.
func New(cfg Config, pools []*balancer.Pool, opts ...Option) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := buildOptions(opts)
	c := &Cluster{
		cfg:      cfg,
		log:      obs.Logger(o.logger).With("tier", "cluster"),
		pools:    make(map[string]*balancer.Pool, len(pools)),
		own:      make(map[endpointKey]*ownReport),
		kick:     make(chan struct{}, 1),
		reports:  make(map[reportKey]*peerReport),
		seen:     make(map[endpointKey]bool),
		departed: make(map[string]departure),
		leaving:  make(map[string]bool),
		lastAck:  make(map[string]time.Time),
		epochs:   make(map[string]int64),
		limiter:  o.limiter,
	}
	if cfg.Key != "" {
		c.key, _ = decodeKey(cfg.Key)
	}
	for i, p := range pools {
		if p == nil {
			return nil, &tier.ConfigError{Field: fmt.Sprintf("pools[%d]", i), Problem: "nil pool"}
		}
		if _, dup := c.pools[p.Name()]; dup {
			return nil, &tier.ConfigError{Field: fmt.Sprintf("pools[%d]", i), Value: p.Name(), Problem: "two pools of one name: peers could not tell them apart"}
		}
		c.pools[p.Name()] = p
	}
	m, err := newClusterMetrics(c, o.registry)
	if err != nil {
		return nil, fmt.Errorf("cluster: metrics: %w", err)
	}
	c.metrics = m
	return c, nil
}

// Name returns the node's name among its peers: Config.Name, or while the
// node runs the name it made up from the host name and the bound address;
// "cluster" for an unnamed node that is not running.
func (c *Cluster) Name() string {
	if ml := c.ml.Load(); ml != nil {
		return ml.LocalNode().Name
	}
	return cmp.Or(c.cfg.Name, "cluster")
}

// Check is the node's readiness: nil while it runs. A node alone is ready:
// its pools balance without peers, and a front door must not go out of
// service because its pair did.
func (c *Cluster) Check(context.Context) error {
	if c.ml.Load() == nil {
		return ErrStopped
	}
	return nil
}

// LocalAddr returns the bound gossip address ("127.0.0.1:7946") while the
// node runs, else "".
func (c *Cluster) LocalAddr() string {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.run == nil {
		return ""
	}
	return c.run.localAdr
}

// Start binds the gossip address, begins sharing the pools' endpoint state
// and joins the Peers. Joining fails softly: a node that reaches no peer
// starts alone and keeps trying in the background until Stop. Start fails
// when the address cannot be bound.
func (c *Cluster) Start(ctx context.Context) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.run != nil {
		return ErrStarted
	}
	host, port, _ := splitIPPort(c.cfg.Listen, true)
	if host == "" {
		host = "0.0.0.0"
	}
	mlLog := slog.NewLogLogger(c.log.Handler(), slog.LevelDebug)
	tr, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: mlLog})
	if err != nil {
		return fmt.Errorf("cluster: listen %s: %w", c.cfg.Listen, err)
	}
	local := net.JoinHostPort(host, strconv.Itoa(tr.GetAutoBindPort()))
	name := c.cfg.Name
	if name == "" {
		h, _ := os.Hostname()
		name = h + "-" + local
	}

	runCtx, cancel := context.WithCancel(context.Background())
	r := &clusterRun{name: name, epoch: time.Now().UnixNano(), ctx: runCtx, cancel: cancel, localAdr: local}
	mc := c.cfg.memberlistConfig(c.log)
	mc.Name = name
	mc.Transport = tr
	mc.BindAddr, mc.BindPort = host, tr.GetAutoBindPort()
	if c.cfg.Advertise != "" {
		mc.AdvertiseAddr, mc.AdvertisePort, _ = splitIPPort(c.cfg.Advertise, false)
	}
	if c.key != nil {
		mc.SecretKey = c.key
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	r.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return max(1, int(c.members.Load())) },
		RetransmitMult: mc.RetransmitMult,
	}
	mc.Delegate = &clusterDelegate{c: c, queue: r.queue, name: name, epoch: r.epoch}
	mc.Events = &clusterEvents{c: c}
	mc.Ping = &clusterPings{c: c}

	c.outMu.Lock()
	c.seq = 0
	c.own = make(map[endpointKey]*ownReport)
	c.outbox = nil
	c.outMu.Unlock()
	c.viewMu.Lock()
	c.self = name
	c.viewMu.Unlock()
	c.members.Store(0)

	ml, err := memberlist.Create(mc)
	if err != nil {
		cancel()
		_ = tr.Shutdown()
		return fmt.Errorf("cluster: %w", err)
	}
	r.ml = ml
	c.ml.Store(ml)
	c.run = r

	// Observe the pools before joining, so that what the push/pull of the
	// join carries already includes this node's own state.
	for name, p := range c.pools {
		r.unsubs = append(r.unsubs, p.Observe(
			func(ch balancer.Change) { c.observed(name, ch) },
			func(ep string, until int64, down bool) { c.seedOwn(name, ep, until, down) },
		))
	}
	r.wg.Go(func() { c.sendLoop(runCtx, r) })
	if c.limiter != nil {
		r.wg.Go(func() { c.limitLoop(runCtx, r) })
	}

	c.join(runCtx, r, c.peersBut(c.cfg.Peers, local))
	c.log.Info("cluster node started", "node", name, "addr", local, "encrypted", c.key != nil)
	return nil
}

// Join joins the cluster through peers (host:port gossip addresses) on a
// node already started: for a peer whose address is known only once this
// node runs. Like the Peers at Start, joining fails softly: a node that
// reaches none of them stays alone and tries them again every JoinRetry,
// with the Peers, until Stop. Join fails on a node not running
// (ErrStopped) and on an address that is not host:port.
func (c *Cluster) Join(peers ...string) error {
	for _, p := range peers {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			return &tier.ConfigError{Field: "peers", Value: p, Problem: "not host:port", Allowed: "host:port"}
		}
	}
	c.runMu.Lock()
	defer c.runMu.Unlock()
	r := c.run
	if r == nil {
		return ErrStopped
	}
	c.join(r.ctx, r, c.peersBut(peers, r.localAdr))
	return nil
}

// join adds peers to those r tries, tries them at once and starts the
// retry loop if it is not running. The caller holds runMu.
func (c *Cluster) join(ctx context.Context, r *clusterRun, peers []string) {
	if len(peers) == 0 {
		return
	}
	r.peersMu.Lock()
	for _, p := range peers {
		if !slices.Contains(r.peers, p) {
			r.peers = append(r.peers, p)
		}
	}
	start := !r.looping
	r.looping = true
	r.peersMu.Unlock()
	if n, err := r.ml.Join(peers); n == 0 {
		c.log.Warn("cluster: no peer reached; running alone and retrying", "peers", peers, "err", err, "retry", c.cfg.JoinRetry)
	} else {
		c.log.Info("cluster: joined", "node", r.name, "via", n, "members", r.ml.NumMembers())
	}
	if start {
		r.wg.Go(func() { c.joinLoop(ctx, r) })
	}
}

// peersBut returns peers other than this node's own addresses.
func (c *Cluster) peersBut(peers []string, local string) []string {
	var out []string
	for _, p := range peers {
		if p == local || p == c.cfg.Listen || (c.cfg.Advertise != "" && p == c.cfg.Advertise) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// joinLoop tries the Peers every JoinRetry while this node is alone: at
// first when none answered, later when all its peers died or a partition
// cut them off (memberlist does not rejoin dead nodes by itself).
func (c *Cluster) joinLoop(ctx context.Context, r *clusterRun) {
	t := time.NewTicker(c.cfg.JoinRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.ml.NumMembers() > 1 {
			continue
		}
		r.peersMu.Lock()
		peers := slices.Clone(r.peers)
		r.peersMu.Unlock()
		if n, err := r.ml.Join(peers); n > 0 {
			c.log.Info("cluster: joined", "node", r.name, "via", n, "members", r.ml.NumMembers())
		} else {
			c.log.Debug("cluster: join retry failed", "peers", peers, "err", err)
		}
	}
}

// Stop leaves the cluster (peers see the node leave rather than die),
// shuts gossip down and waits for the node's goroutines; ctx bounds the
// leave, which is no error when every peer is leaving at the same time. What peers reported stays applied where it is bounded in time
// (ejections run to their end); downs that only peers reported are lifted,
// since nobody will report them up any more.
func (c *Cluster) Stop(ctx context.Context) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	r := c.run
	if r == nil {
		return nil
	}
	c.run = nil
	for _, unsub := range r.unsubs {
		unsub()
	}
	r.cancel()
	r.wg.Wait()

	// Say so first: memberlist tells peers a node is gone the same way
	// whether it left or died.
	self := r.ml.LocalNode().Name
	bye := append([]byte{msgLeaving}, self...)
	for _, m := range r.ml.Members() {
		if m.Name != self {
			_ = r.ml.SendBestEffort(m, bye)
		}
	}
	timeout := time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	var err error
	if timeout > 0 {
		if lerr := r.ml.Leave(timeout); lerr != nil {
			// memberlist gossips the leave only to live members, so it
			// never gets out when every peer leaves at the same time (an
			// orchestrator stopping the whole cluster): nobody is left to
			// tell, and that is a normal stop.
			if live := c.liveStaying(r.ml, self); len(live) > 0 {
				err = fmt.Errorf("cluster: leave not heard by %s: %w", strings.Join(live, ", "), lerr)
			} else {
				c.log.Info("cluster: left while every peer was leaving too", "node", r.name)
			}
		}
	}
	c.ml.Store(nil)
	if serr := r.ml.Shutdown(); serr != nil && err == nil {
		err = fmt.Errorf("cluster: %w", serr)
	}

	c.viewMu.Lock()
	now := time.Now()
	for origin := range c.epochs {
		c.departLocked(origin, "", "left", now)
	}
	c.applyAllLocked()
	c.viewMu.Unlock()
	c.log.Info("cluster node stopped", "node", r.name)
	return err
}

// liveStaying returns the members other than self that memberlist still
// counts as live and that have not said they are leaving.
func (c *Cluster) liveStaying(ml *memberlist.Memberlist, self string) []string {
	// memberlist is asked before viewMu is taken (see Members).
	nodes := ml.Members()
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	var out []string
	for _, n := range nodes {
		if n.Name != self && !c.leaving[n.Name] {
			out = append(out, n.Name)
		}
	}
	return out
}

// Members returns every node this node knows, itself included: the live
// ones from gossip (suspect when one has not answered this node's probes
// for two rounds), and the ones that died or left in the last ten
// minutes.
func (c *Cluster) Members() []Member {
	ml := c.ml.Load()
	var out []Member
	seen := map[string]bool{}
	if ml != nil {
		self := ml.LocalNode().Name
		// memberlist is asked before viewMu is taken: it holds its own
		// lock while it calls the event delegate, which takes viewMu.
		nodes := ml.Members()
		quiet := c.cfg.ProbeInterval*time.Duration(2*len(nodes)) + c.cfg.ProbeInterval/2
		now := time.Now()
		c.ackMu.Lock()
		for _, n := range nodes {
			state := "alive"
			if at, ok := c.lastAck[n.Name]; ok && n.Name != self && now.Sub(at) > quiet {
				state = "suspect"
			}
			out = append(out, Member{Name: n.Name, Addr: n.Address(), State: state, Self: n.Name == self})
			seen[n.Name] = true
		}
		c.ackMu.Unlock()
	}
	c.viewMu.Lock()
	now := time.Now()
	for name, d := range c.departed {
		if now.Sub(d.at) > departedRetention {
			delete(c.departed, name)
			continue
		}
		if !seen[name] && d.addr != "" {
			out = append(out, Member{Name: name, Addr: d.addr, State: d.state})
		}
	}
	c.viewMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PeerViews returns what each peer last reported about each endpoint of
// the pools this node shares, sorted by node, pool and endpoint.
func (c *Cluster) PeerViews() []PeerView {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	now := time.Now().UnixNano()
	out := make([]PeerView, 0, len(c.reports))
	for k, r := range c.reports {
		v := PeerView{Node: k.origin, Pool: k.pool, Endpoint: k.endpoint, State: balancer.StateUp, Updated: r.updated}
		switch {
		case r.until > now:
			v.State, v.Until = balancer.StateEjected, time.Unix(0, r.until)
		case r.down:
			v.State = balancer.StateDown
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b PeerView) int {
		return cmp.Or(strings.Compare(a.Node, b.Node), strings.Compare(a.Pool, b.Pool), strings.Compare(a.Endpoint, b.Endpoint))
	})
	return out
}
