package cluster

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/threetier/threetier/balancer"
)

// What nodes tell each other is a report: one node's own view of one
// endpoint of one pool (ejected for how long yet, down or not). A node
// reports only its own observations; what it applied from peers is never
// sent again as its own, so state cannot echo between nodes. Reports of
// one origin are ordered by (epoch, seq): the epoch is when the origin
// started, by its own clock, so that a restarted node's reports supersede
// those of its previous life; seq counts its changes. Times travel as
// durations left, which no clock skew distorts (a gossip repeat of a
// report arrives a few gossip intervals late and is then dropped as a
// duplicate of the direct send).

type endpointKey struct{ pool, endpoint string }

type reportKey struct{ origin, pool, endpoint string }

// ownReport is this node's own state of one endpoint; outMu held.
type ownReport struct {
	until int64 // unix nanos; 0 = not ejected
	down  bool
	seq   uint64
}

// peerReport is what a peer last reported; viewMu held.
type peerReport struct {
	epoch   int64
	seq     uint64
	until   int64 // local unix nanos, from the duration left on arrival
	down    bool
	updated time.Time
}

// wireReport is a report on the wire.
type wireReport struct {
	Origin   string `json:"o"`
	Epoch    int64  `json:"l"`
	Seq      uint64 `json:"s"`
	Pool     string `json:"p"`
	Endpoint string `json:"e"`
	// Ejected is how long the ejection still lasts, in nanoseconds, when
	// the report is encoded; zero when not ejected.
	Ejected int64 `json:"r,omitempty"`
	Down    bool  `json:"d,omitempty"`
}

// wireState is a node's whole view, exchanged by push/pull on join and now
// and then: its own reports, and those it holds from live peers, so that a
// node that (re)starts learns everything from the first peer it reaches.
type wireState struct {
	From    string       `json:"f"`
	Epoch   int64        `json:"l"` // From's current life
	Reports []wireReport `json:"r"`
	// Limits is the rate limiter's state, when the node shares one.
	Limits *wireLimits `json:"q,omitempty"`
}

// User messages start with their kind.
const (
	msgReport  byte = 1 // one wireReport
	msgLeaving byte = 2 // the sender's name: it is leaving, not dying
)

// queued is a change of this node's own state waiting for the sender.
type queued struct {
	key endpointKey
	rep ownReport
}

// wire is this node's own report r on the wire.
func wire(origin string, epoch int64, k endpointKey, r ownReport, now int64) wireReport {
	w := wireReport{Origin: origin, Epoch: epoch, Seq: r.seq, Pool: k.pool, Endpoint: k.endpoint, Down: r.down}
	if r.until > now {
		w.Ejected = r.until - now
	}
	return w
}

// seedOwn records an endpoint's state as the pool had it when the node
// started; it is sent with the node's state on join. Called with the
// pool's mu held.
func (c *Cluster) seedOwn(pool, ep string, until int64, down bool) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.seq++
	c.own[endpointKey{pool, ep}] = &ownReport{until: until, down: down, seq: c.seq}
}

// observed is the pools' observer: it records one change of this node's
// own state and queues it for the sender. Called with the pool's mu held:
// it only takes outMu and never blocks.
func (c *Cluster) observed(pool string, ch balancer.Change) {
	if ch.Peer {
		return // the end of a peer's ejection: the peer reports it
	}
	k := endpointKey{pool, ch.Endpoint}
	c.outMu.Lock()
	o := c.own[k]
	if o == nil {
		o = &ownReport{}
		c.own[k] = o
	}
	switch ch.Kind {
	case balancer.ChangeEject:
		o.until = ch.Until
	case balancer.ChangeUneject:
		o.until = 0
	case balancer.ChangeDown:
		o.down = true
	case balancer.ChangeUp:
		o.down = false
	}
	c.seq++
	o.seq = c.seq
	c.outbox = append(c.outbox, queued{k, *o})
	c.outMu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// sendLoop sends each change of this node's own state to every live peer
// at once (best effort: one encrypted UDP packet each, which never waits on
// a dead peer) and queues it for gossip, which repeats it to random peers
// over the next gossip rounds in case a packet was lost.
func (c *Cluster) sendLoop(ctx context.Context, r *clusterRun) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		c.outMu.Lock()
		batch := c.outbox
		c.outbox = nil
		c.outMu.Unlock()
		if len(batch) == 0 {
			continue
		}
		self := r.ml.LocalNode().Name
		members := r.ml.Members()
		now := time.Now().UnixNano()
		for _, q := range batch {
			msg, err := json.Marshal(wire(r.name, r.epoch, q.key, q.rep, now))
			if err != nil {
				continue
			}
			msg = append([]byte{msgReport}, msg...)
			r.queue.QueueBroadcast(&reportBroadcast{key: q.key, msg: msg})
			for _, m := range members {
				if m.Name == self {
					continue
				}
				if err := r.ml.SendBestEffort(m, msg); err != nil {
					c.log.Debug("cluster: send failed; gossip will repeat it", "to", m.Name, "err", err)
				}
			}
			c.metrics.sent.Add(1)
		}
	}
}

// reportBroadcast is a report in memberlist's gossip queue; a newer report
// of the same endpoint replaces it.
type reportBroadcast struct {
	key endpointKey
	msg []byte
}

func (b *reportBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*reportBroadcast)
	return ok && o.key == b.key
}
func (b *reportBroadcast) Message() []byte { return b.msg }
func (b *reportBroadcast) Finished()       {}

// receive takes peers' reports into the view and applies what changed to
// the pools. from is the node that sent them; reports it relays about
// another origin are taken only when alive says that origin is a live
// member (else their downs are dropped: nobody would ever report them up
// here), and relayed state never overrides what the origin said directly
// (it is ordered by the origin's own sequence).
func (c *Cluster) receive(reps []wireReport, from string, fromEpoch int64, alive map[string]bool) {
	now := time.Now()
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	touched := map[string]bool{}
	if from != "" && from != c.self && fromEpoch != 0 {
		c.newLifeLocked(from, fromEpoch, touched)
	}
	for _, w := range reps {
		if w.Origin == "" || w.Origin == c.self || w.Pool == "" || w.Endpoint == "" {
			continue
		}
		c.metrics.received.Add(1)
		if !c.newLifeLocked(w.Origin, w.Epoch, touched) {
			continue // a previous life of the origin
		}
		k := reportKey{w.Origin, w.Pool, w.Endpoint}
		r := c.reports[k]
		if r != nil && r.epoch == w.Epoch && r.seq >= w.Seq {
			continue // seen: the gossip repeat of a direct send
		}
		r = &peerReport{epoch: w.Epoch, seq: w.Seq, down: w.Down, updated: now}
		if w.Ejected > 0 {
			r.until = now.UnixNano() + w.Ejected
		}
		if w.Origin != from && !alive[w.Origin] {
			r.down = false
		}
		c.reports[k] = r
		c.seen[endpointKey{w.Pool, w.Endpoint}] = true
		touched[w.Pool] = true
		c.metrics.applied.Add(1)
	}
	for pool := range touched {
		c.applyLocked(pool)
	}
}

// newLifeLocked records origin's epoch and reports whether a report of
// that epoch is current; a newer epoch drops the reports of the origin's
// previous life.
func (c *Cluster) newLifeLocked(origin string, epoch int64, touched map[string]bool) bool {
	cur, ok := c.epochs[origin]
	switch {
	case ok && epoch < cur:
		return false
	case ok && epoch == cur:
		return true
	}
	c.epochs[origin] = epoch
	for k := range c.reports {
		if k.origin == origin && c.reports[k].epoch < epoch {
			delete(c.reports, k)
			touched[k.pool] = true
		}
	}
	return true
}

// applyLocked brings each endpoint of the pool named pool to what its
// peers report together: ejected until the latest end any of them
// reported, down while any of them reports it down (see
// balancer.Pool.ApplyPeers for what the pool accepts). viewMu held.
func (c *Cluster) applyLocked(pool string) {
	p := c.pools[pool]
	if p == nil {
		return
	}
	type agg struct {
		until int64
		down  bool
	}
	all := map[string]agg{}
	for k := range c.seen {
		if k.pool == pool {
			all[k.endpoint] = agg{}
		}
	}
	for k, r := range c.reports {
		if k.pool != pool {
			continue
		}
		a := all[k.endpoint]
		a.until = max(a.until, r.until)
		a.down = a.down || r.down
		all[k.endpoint] = a
	}
	for ep, a := range all {
		p.ApplyPeers(ep, a.until, a.down)
	}
}

// applyAllLocked applies the view to every pool; viewMu held.
func (c *Cluster) applyAllLocked() {
	for pool := range c.pools {
		c.applyLocked(pool)
	}
}

// departLocked records that a node died or left: its downs are lifted
// (nobody would report them up), its ejections run to their end. viewMu
// held.
func (c *Cluster) departLocked(name, addr, state string, now time.Time) {
	if addr != "" {
		c.departed[name] = departure{addr: addr, state: state, at: now}
	}
	for k, r := range c.reports {
		if k.origin == name && r.down {
			r.down = false
			r.updated = now
		}
	}
}

// clusterDelegate is memberlist's Delegate: user messages, gossip and
// push/pull state.
type clusterDelegate struct {
	c     *Cluster
	queue *memberlist.TransmitLimitedQueue
	name  string
	epoch int64
}

func (d *clusterDelegate) NodeMeta(int) []byte { return nil }

func (d *clusterDelegate) NotifyMsg(b []byte) {
	if len(b) < 2 {
		return
	}
	if b[0] == msgLeaving {
		d.c.viewMu.Lock()
		d.c.leaving[string(b[1:])] = true
		d.c.viewMu.Unlock()
		return
	}
	if d.c.receiveLimits(b) {
		return
	}
	if b[0] != msgReport {
		return
	}
	var w wireReport
	if err := json.Unmarshal(b[1:], &w); err != nil {
		d.c.log.Debug("cluster: bad report", "err", err)
		return
	}
	d.c.receive([]wireReport{w}, w.Origin, 0, nil)
}

func (d *clusterDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState is this node's whole view: its own reports and those of its
// live peers.
func (d *clusterDelegate) LocalState(bool) []byte {
	c := d.c
	now := time.Now().UnixNano()
	st := wireState{From: d.name, Epoch: d.epoch}
	c.outMu.Lock()
	for k, o := range c.own {
		st.Reports = append(st.Reports, wire(d.name, d.epoch, k, *o, now))
	}
	c.outMu.Unlock()
	c.viewMu.Lock()
	for k, r := range c.reports {
		if _, gone := c.departed[k.origin]; gone {
			continue
		}
		w := wireReport{Origin: k.origin, Epoch: r.epoch, Seq: r.seq, Pool: k.pool, Endpoint: k.endpoint, Down: r.down}
		if r.until > now {
			w.Ejected = r.until - now
		}
		st.Reports = append(st.Reports, w)
	}
	c.viewMu.Unlock()
	st.Limits = c.localLimits()
	b, _ := json.Marshal(st)
	return b
}

func (d *clusterDelegate) MergeRemoteState(b []byte, _ bool) {
	var st wireState
	if err := json.Unmarshal(b, &st); err != nil {
		d.c.log.Debug("cluster: bad state from a peer", "err", err)
		return
	}
	alive := map[string]bool{}
	if ml := d.c.ml.Load(); ml != nil {
		for _, n := range ml.Members() {
			alive[n.Name] = true
		}
	}
	d.c.receive(st.Reports, st.From, st.Epoch, alive)
	d.c.mergeLimits(st.Limits)
}

// clusterEvents is memberlist's EventDelegate. memberlist calls it with its
// node lock held: it must not call back into memberlist.
type clusterEvents struct{ c *Cluster }

func (e *clusterEvents) NotifyJoin(n *memberlist.Node) {
	e.c.members.Add(1)
	e.c.viewMu.Lock()
	defer e.c.viewMu.Unlock()
	delete(e.c.departed, n.Name)
	delete(e.c.leaving, n.Name)
	if n.Name != e.c.self {
		e.c.log.Info("cluster: member joined", "member", n.Name, "addr", n.Address())
	}
}

func (e *clusterEvents) NotifyLeave(n *memberlist.Node) {
	e.c.members.Add(-1)
	e.c.ackMu.Lock()
	delete(e.c.lastAck, n.Name)
	e.c.ackMu.Unlock()
	e.c.viewMu.Lock()
	defer e.c.viewMu.Unlock()
	state := "dead"
	if e.c.leaving[n.Name] {
		state = "left"
		delete(e.c.leaving, n.Name)
	}
	e.c.departLocked(n.Name, n.Address(), state, time.Now())
	e.c.applyAllLocked()
	e.c.log.Info("cluster: member gone", "member", n.Name, "state", state)
}

func (e *clusterEvents) NotifyUpdate(*memberlist.Node) {}

// clusterPings is memberlist's PingDelegate: it records when each member
// last answered a probe of this node.
type clusterPings struct{ c *Cluster }

func (p *clusterPings) AckPayload() []byte { return nil }

func (p *clusterPings) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	p.c.ackMu.Lock()
	p.c.lastAck[n.Name] = time.Now()
	p.c.ackMu.Unlock()
}
