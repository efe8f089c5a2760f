// Package ratelimit keeps per-client limits for a front door: a token
// bucket per client key (requests per second with a burst), a count of
// concurrent connections per client address, and blocks made and lifted at
// run time. It knows nothing of HTTP engines: callers pass a key and the
// time, and set the headers a Decision gives them on whatever response
// type they have.
//
// The table is sharded by a hash of the key, each shard under its own
// mutex, so that the hot path takes no lock shared by all requests. It
// holds at most MaxKeys keys: a new key over the cap evicts an idle one
// (a full bucket and no connection first, else the longest unused of a
// small random sample), so that a flood of distinct keys costs memory up
// to the cap and no further.
//
// Nodes of a cluster share their counts: each node takes the requests it
// accepted per key since the last time (Share, TakeDeltas) and sends them to its
// peers, which consume as many tokens of the same key (ApplyDeltas), so
// that a client spreading its requests over nodes is limited as one. A
// node that starts takes its peers' levels (Levels, MergeLevels), and
// blocks travel the same way (TakeBlockChanges, ApplyBlock).
package ratelimit

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Config.
const (
	DefaultMaxKeys = 100_000
	DefaultPolicy  = "default"
	// MaxKeyLen is the longest key kept as given; a longer one (a header
	// a client fills at will) is kept as a hash of fixed length, so that
	// keys cannot make the table or a peer message large.
	MaxKeyLen = 128
	// MaxPolicyLen is the longest name of a Policy.
	MaxPolicyLen = 64
)

// maxWireKey is the longest key a peer may send: a key of a Policy
// travels as NUL, the policy's name, NUL, the key (see wireKey).
const maxWireKey = MaxKeyLen + 8 + MaxPolicyLen + 2

// shardCount splits the table: enough that two cores rarely meet on one
// mutex, few enough that a shard's cap stays large.
const shardCount = 64

// tokenSlack absorbs the rounding of refills in float64: a token due at
// exactly this instant counts as there.
const tokenSlack = 1e-9

// evictSample is how many keys a full shard looks at to pick one to evict.
const evictSample = 8

// Config sets a Limiter's limits.
type Config struct {
	// Rate is the requests per second each key may make on average; zero
	// means no request limit (connections and blocks still apply).
	Rate float64
	// Burst is how many requests a key may make at once, the bucket's
	// size; zero means the rate rounded up (at least 1).
	Burst int
	// ConnLimit caps the concurrent connections of one key (Acquire);
	// zero means no cap.
	ConnLimit int
	// MaxKeys caps the keys tracked; zero means DefaultMaxKeys.
	MaxKeys int
	// Policy names the limit in the RateLimit-Policy and RateLimit
	// headers; zero means DefaultPolicy.
	Policy string
	// Policies are limits of their own beside Rate (a route's limit beside
	// a front door's): a key has one bucket per policy, counted apart, and
	// shared with peers under the policy's name. AllowPolicy picks one by
	// its index here plus one.
	Policies []Policy
}

// Policy is a request limit counted apart from the Config's own.
type Policy struct {
	// Name names the policy in the RateLimit-Policy header and, between
	// nodes, its buckets: peers must give the same limit the same name.
	Name string `json:"name"`
	// Rate is the requests per second a key may make on average; more
	// than zero.
	Rate float64 `json:"rate"`
	// Burst is the bucket's size; zero means Rate rounded up (at least 1).
	Burst int `json:"burst"`
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	var errs []error
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("ratelimit: Rate %v: must be a finite number, 0 or more", c.Rate))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: Burst %d: must not be negative", c.Burst))
	}
	if c.ConnLimit < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: ConnLimit %d: must not be negative", c.ConnLimit))
	}
	if c.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: MaxKeys %d: must not be negative", c.MaxKeys))
	}
	seen := make(map[string]bool, len(c.Policies))
	for _, p := range c.Policies {
		switch {
		case p.Name == "" || len(p.Name) > MaxPolicyLen || strings.ContainsRune(p.Name, 0):
			errs = append(errs, fmt.Errorf("ratelimit: policy %q: a name of 1 to %d bytes, without NUL", p.Name, MaxPolicyLen))
		case seen[p.Name]:
			errs = append(errs, fmt.Errorf("ratelimit: policy %q: named twice", p.Name))
		}
		seen[p.Name] = true
		if !(p.Rate > 0) || math.IsInf(p.Rate, 0) {
			errs = append(errs, fmt.Errorf("ratelimit: policy %q: Rate %v: must be a finite number above 0", p.Name, p.Rate))
		}
		if p.Burst < 0 {
			errs = append(errs, fmt.Errorf("ratelimit: policy %q: Burst %d: must not be negative", p.Name, p.Burst))
		}
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	c.Burst = defaultBurst(c.Rate, c.Burst)
	c.Policies = slices.Clone(c.Policies)
	for i := range c.Policies {
		c.Policies[i].Burst = defaultBurst(c.Policies[i].Rate, c.Policies[i].Burst)
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.Policy == "" {
		c.Policy = DefaultPolicy
	}
	return c
}

// defaultBurst is a bucket's size: burst, or zero for the rate rounded up.
func defaultBurst(rate float64, burst int) int {
	if burst == 0 && rate > 0 {
		return max(1, int(math.Ceil(rate)))
	}
	return burst
}

// policy is one limit as the table counts it: the Config's own (index 0)
// or one of its Policies.
type policy struct {
	name    string
	rate    float64
	perNano float64 // tokens per nanosecond
	burst   float64
	header  string // the RateLimit-Policy value, made once
}

func newPolicy(name string, rate float64, burst int) policy {
	p := policy{name: name, rate: rate, perNano: rate / 1e9, burst: float64(burst)}
	p.header = strconv.Quote(name) + ";q=" + strconv.Itoa(burst) + ";w=" + strconv.FormatInt(p.window(), 10)
	return p
}

// window is the RateLimit-Policy's window in seconds: the time an empty
// bucket takes to fill, at least a second.
func (p *policy) window() int64 {
	if p.rate <= 0 {
		return 1
	}
	return max(1, int64(math.Ceil(p.burst/p.rate)))
}

// timeFor is how long the bucket takes to gain tokens, rounded up.
func (p *policy) timeFor(tokens float64) time.Duration {
	return time.Duration(math.Ceil(tokens * 1e9 / p.rate))
}

// slot is an entry's place in its shard: a key has one per policy.
type slot struct {
	policy int
	key    string
}

// Limiter is the table of client keys. Its methods are safe for
// concurrent use.
type Limiter struct {
	cfg      Config
	policies []policy       // the Config's own, then its Policies
	byName   map[string]int // index of Policies by name, for peers' keys
	perShard int
	seed     maphash.Seed
	shards   [shardCount]shard

	blocked atomic.Int64  // keys blocked, ended blocks not yet lifted included
	sharing atomic.Bool   // counts are kept for peers (Share)
	limited atomic.Uint64 // requests refused, all keys
	refused atomic.Uint64 // connections refused, all keys

	changeMu sync.Mutex
	changes  []BlockChange // local block changes not yet taken
}

type shard struct {
	mu     sync.Mutex
	keys   map[slot]*entry
	blocks map[string]int64 // unix nanos the block ends; 0 = never
	// blocked is the limiter's count of blocks, kept with blocks.
	blocked *atomic.Int64
	dirty   []*entry // entries with pending > 0, for TakeDeltas
	_       [64]byte // keeps neighbouring shards' mutexes off one cache line
}

// entry is one key's state; its shard's mu held.
type entry struct {
	key     string
	policy  int // index in Limiter.policies
	tokens  float64
	last    int64 // unix nanos tokens were last brought up to date
	seen    int64 // unix nanos of the last request or connection
	conns   int32
	pending uint32 // requests accepted here since TakeDeltas, while shared
	dirty   bool   // in the shard's dirty list

	// The request rate: requests (accepted or not) in the current
	// one-second window and in the one before.
	window       int64
	inWin, prior uint32

	allowed, limited uint64
}

// New returns a Limiter for cfg; it fails for a setting out of range.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Limiter{
		cfg:      cfg,
		policies: []policy{newPolicy(cfg.Policy, cfg.Rate, cfg.Burst)},
		byName:   make(map[string]int, len(cfg.Policies)),
		perShard: max(1, (cfg.MaxKeys+shardCount-1)/shardCount),
		seed:     maphash.MakeSeed(),
	}
	for _, p := range cfg.Policies {
		l.byName[p.Name] = len(l.policies)
		l.policies = append(l.policies, newPolicy(p.Name, p.Rate, p.Burst))
	}
	for i := range l.shards {
		l.shards[i].keys = make(map[slot]*entry)
		l.shards[i].blocks = make(map[string]int64)
		l.shards[i].blocked = &l.blocked
	}
	return l, nil
}

// Config returns the configuration with the defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// PolicyIndex returns the index AllowPolicy takes for the Policy named
// name: its place in Config.Policies plus one.
func (l *Limiter) PolicyIndex(name string) (int, bool) {
	i, ok := l.byName[name]
	return i, ok
}

// NormalizeKey returns the key as the table holds it: as given up to
// MaxKeyLen bytes, a hash of it beyond. A key starting with NUL is hashed
// too: that start marks a policy's keys between nodes.
func NormalizeKey(key string) string {
	if len(key) <= MaxKeyLen && (key == "" || key[0] != 0) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:16])
}

func (l *Limiter) shardOf(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)%shardCount]
}

// Decision is the answer to one request.
type Decision struct {
	// Allowed is true when the request may go on.
	Allowed bool
	// Blocked is true when the key is blocked (then Allowed is false).
	Blocked bool
	// Remaining is the whole tokens left after this request.
	Remaining int
	// RetryAfter is, for a refusal, how long until the next token (or the
	// end of a block; zero for a block without end).
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again.
	Reset time.Duration

	policy string
	name   string
}

// Policy returns the RateLimit-Policy value: the policy's name, its quota
// (the burst) and window (the seconds an empty bucket takes to fill).
func (d Decision) Policy() string { return d.policy }

// Headers returns the fields of the IETF httpapi draft
// (draft-ietf-httpapi-ratelimit-headers): RateLimit-Policy, and RateLimit
// with the tokens left and the seconds until they are all back; as (name,
// value) pairs that any engine can set. Nil when no limit is on.
// Retry-After is not among them: a refusal's problem answer sets it from
// RetryAfter.
func (d Decision) Headers() [][2]string {
	if d.policy == "" {
		return nil
	}
	return [][2]string{
		{"RateLimit-Policy", d.policy},
		{"RateLimit", strconv.Quote(d.name) + ";r=" + strconv.Itoa(max(0, d.Remaining)) + ";t=" + strconv.FormatInt(ceilSeconds(d.Reset), 10)},
	}
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Allow takes a token of key's bucket if there is one. A blocked key is
// refused without counting. Keys longer than MaxKeyLen are hashed first
// (see NormalizeKey), here and in every method that takes a key.
func (l *Limiter) Allow(key string, now time.Time) Decision {
	return l.AllowPolicy(0, key, now)
}

// AllowPolicy is Allow under a policy: 0 for the Config's own limit, i for
// Config.Policies[i-1] (see PolicyIndex). A block of key holds under
// every policy.
func (l *Limiter) AllowPolicy(i int, key string, now time.Time) Decision {
	key = NormalizeKey(key)
	p := &l.policies[i]
	n := now.UnixNano()
	s := l.shardOf(key)
	s.mu.Lock()
	if len(s.blocks) > 0 {
		if d, blocked := s.blockedLocked(key, n); blocked {
			s.mu.Unlock()
			l.limited.Add(1)
			if p.rate > 0 {
				d.policy, d.name = p.header, p.name
			}
			return d
		}
	}
	if p.rate <= 0 {
		s.mu.Unlock()
		return Decision{Allowed: true}
	}
	e := s.keys[slot{i, key}]
	if e == nil {
		e = l.addLocked(s, i, key, n)
	}
	l.refill(e, n)
	e.seen = n
	e.count(n)
	d := Decision{policy: p.header, name: p.name}
	if e.tokens >= 1-tokenSlack {
		e.tokens--
		e.allowed++
		if l.sharing.Load() {
			e.pending++
			if !e.dirty && len(s.dirty) < 2*l.perShard {
				e.dirty = true
				s.dirty = append(s.dirty, e)
			}
		}
		d.Allowed = true
	} else {
		e.limited++
		d.RetryAfter = p.timeFor(1 - e.tokens)
	}
	d.Remaining = int(e.tokens)
	d.Reset = p.timeFor(p.burst - e.tokens)
	s.mu.Unlock()
	if !d.Allowed {
		l.limited.Add(1)
	}
	return d
}

// blockedLocked reports whether key is blocked at n, lifting a block
// that ended.
func (s *shard) blockedLocked(key string, n int64) (Decision, bool) {
	until, ok := s.blocks[key]
	if !ok {
		return Decision{}, false
	}
	if until != 0 && until <= n {
		delete(s.blocks, key)
		s.blocked.Add(-1)
		return Decision{}, false
	}
	d := Decision{Blocked: true}
	if until != 0 {
		d.RetryAfter = time.Duration(until - n)
		d.Reset = d.RetryAfter
	}
	return d, true
}

// count adds a request to the rate's windows.
func (e *entry) count(n int64) {
	const second = int64(time.Second)
	switch w := n / second; {
	case w == e.window:
	case w == e.window+1:
		e.window, e.prior, e.inWin = w, e.inWin, 0
	case w > e.window:
		e.window, e.prior, e.inWin = w, 0, 0
	}
	e.inWin++
}

// rate is the requests per second: of the last whole second, or of the
// current one so far when more.
func (e *entry) rate(n int64) uint32 {
	switch w := n / int64(time.Second); w {
	case e.window:
		return max(e.prior, e.inWin)
	case e.window + 1:
		return e.inWin
	}
	return 0
}

// refill brings e's tokens up to n.
func (l *Limiter) refill(e *entry, n int64) {
	if n > e.last {
		p := &l.policies[e.policy]
		e.tokens = min(p.burst, e.tokens+float64(n-e.last)*p.perNano)
		e.last = n
	}
}

// addLocked makes key's entry under policy i with a full bucket, evicting
// another entry when the shard is at its share of the cap.
func (l *Limiter) addLocked(s *shard, i int, key string, n int64) *entry {
	if len(s.keys) >= l.perShard {
		l.evictLocked(s, n)
	}
	e := &entry{key: key, policy: i, tokens: l.policies[i].burst, last: n, seen: n}
	s.keys[slot{i, key}] = e
	return e
}

// evictLocked drops one key of a full shard: of a few keys taken at
// random (map order), one whose bucket is full again (it holds nothing a
// fresh entry would not) or else the longest unused; never one with open
// connections. A shard whose sample are all connected grows past its
// share until they close: connections are capped elsewhere.
func (l *Limiter) evictLocked(s *shard, n int64) {
	var victim *entry
	looked := 0
	for _, e := range s.keys {
		if e.conns == 0 {
			if l.idle(e, n) {
				victim = e
				break
			}
			if victim == nil || e.seen < victim.seen {
				victim = e
			}
		}
		if looked++; looked >= evictSample && victim != nil {
			break
		}
	}
	if victim != nil {
		delete(s.keys, slot{victim.policy, victim.key})
		victim.pending = 0 // its place in the dirty list is skipped
	}
}

// idle reports whether e's bucket is full at n and it holds nothing else.
func (l *Limiter) idle(e *entry, n int64) bool {
	p := &l.policies[e.policy]
	return e.conns == 0 && e.pending == 0 && (p.perNano <= 0 || e.tokens+float64(n-e.last)*p.perNano >= p.burst)
}

// Acquire counts a connection of key, unless key is blocked or at
// ConnLimit; each true must be matched by one Release.
func (l *Limiter) Acquire(key string, now time.Time) bool {
	key = NormalizeKey(key)
	n := now.UnixNano()
	s := l.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, blocked := s.blockedLocked(key, n); blocked {
		l.refused.Add(1)
		return false
	}
	e := s.keys[slot{0, key}]
	if e == nil {
		e = l.addLocked(s, 0, key, n)
	}
	if l.cfg.ConnLimit > 0 && int(e.conns) >= l.cfg.ConnLimit {
		l.refused.Add(1)
		return false
	}
	e.conns++
	e.seen = n
	return true
}

// Release ends a connection Acquire counted.
func (l *Limiter) Release(key string) {
	key = NormalizeKey(key)
	s := l.shardOf(key)
	s.mu.Lock()
	if e := s.keys[slot{0, key}]; e != nil && e.conns > 0 {
		e.conns--
	}
	s.mu.Unlock()
}

// Conns returns the connections key holds.
func (l *Limiter) Conns(key string) int {
	s := l.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.keys[slot{0, key}]; e != nil {
		return int(e.conns)
	}
	return 0
}

// Len returns the keys tracked.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.keys)
		s.mu.Unlock()
	}
	return n
}

// Limited returns the requests refused so far, blocked ones included.
func (l *Limiter) Limited() uint64 { return l.limited.Load() }

// ConnsRefused returns the connections refused so far.
func (l *Limiter) ConnsRefused() uint64 { return l.refused.Load() }

// Client is one key as the stats show it.
type Client struct {
	Key string `json:"key"`
	// Policy names the policy the key's bucket counts for, when not the
	// Config's own.
	Policy string `json:"policy,omitempty"`
	// Rate is the key's requests in the last whole second, or in the
	// current one so far when more; refused ones included.
	Rate    uint32 `json:"rate"`
	Tokens  int    `json:"tokens"`
	Conns   int    `json:"conns,omitempty"`
	Allowed uint64 `json:"allowed"`
	Limited uint64 `json:"limited"`
}

// Top returns the n keys of highest rate (then most limited). It walks
// the whole table, one shard at a time: for a stats page, not per request.
func (l *Limiter) Top(n int, now time.Time) []Client {
	if n <= 0 {
		return nil
	}
	t := now.UnixNano()
	var out []Client
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for _, e := range s.keys {
			r := e.rate(t)
			if r == 0 && e.limited == 0 && e.conns == 0 {
				continue
			}
			l.refill(e, t)
			c := Client{Key: e.key, Rate: r, Tokens: int(e.tokens), Conns: int(e.conns), Allowed: e.allowed, Limited: e.limited}
			if e.policy != 0 {
				c.Policy = l.policies[e.policy].name
			}
			out = append(out, c)
		}
		s.mu.Unlock()
		if len(out) > 4*n {
			out = topN(out, n)
		}
	}
	return topN(out, n)
}

func topN(cs []Client, n int) []Client {
	slices.SortFunc(cs, func(a, b Client) int {
		return cmp.Or(cmp.Compare(b.Rate, a.Rate), cmp.Compare(b.Limited, a.Limited), cmp.Compare(a.Key, b.Key))
	})
	return cs[:min(n, len(cs))]
}
