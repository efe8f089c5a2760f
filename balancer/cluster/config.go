package cluster

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/threetier/threetier/tier"
)

// EnvPrefix is the default prefix of a node's environment variables:
// tier.LoadEnv(cluster.EnvPrefix, &cfg) reads THREETIER_CLUSTER_NAME,
// THREETIER_CLUSTER_LISTEN, THREETIER_CLUSTER_PEERS, THREETIER_CLUSTER_KEY
// and so on.
const EnvPrefix = tier.EnvPrefix + "CLUSTER_"

// Config describes one node of a Cluster. The zero value of every field
// but Key is a working default, documented on the field.
type Config struct {
	// Name identifies the node among its peers and must be unique in the
	// cluster; zero means the host name and the bound gossip address
	// ("web-1-10.0.0.5:7946"), so that a restarted node on another port is
	// a new member rather than a conflicting one.
	Name string `env:"NAME" json:"name,omitempty"`
	// Listen is the gossip address (TCP and UDP) as host:port; the host must
	// be an IP or empty (every interface), and port 0 picks a free one. Zero
	// means 127.0.0.1:7946: gossip stays on the machine until told otherwise.
	Listen string `env:"LISTEN" json:"listen,omitempty"`
	// Advertise is the ip:port peers should reach this node at, when it is
	// not Listen's (NAT, a wildcard Listen); zero means Listen's, or the
	// first private address of the machine for a wildcard host.
	Advertise string `env:"ADVERTISE" json:"advertise,omitempty"`
	// Peers are other nodes' gossip addresses (host:port). Start joins
	// through any one that answers; a node that reaches none starts alone
	// and keeps trying every JoinRetry. Zero means a node that others join.
	Peers []string `env:"PEERS" envSeparator:"," json:"peers,omitempty"`
	// Key is the cluster's shared secret: base64 of 16, 24 or 32 bytes
	// (AES-128, -192 or -256). All gossip is encrypted and authenticated
	// with it (AES-GCM), and a node without it can neither join nor inject
	// state. It is required unless Insecure is set, because what nodes say
	// takes endpoints out of rotation. Generate one with
	// `head -c 32 /dev/urandom | base64`.
	Key string `env:"KEY" json:"-"`
	// Insecure allows a cluster without Key: plain-text gossip that anyone
	// who reaches the gossip port can join. Only for a trusted network.
	Insecure bool `env:"INSECURE" json:"insecure,omitempty"`
	// JoinRetry is how often a node alone tries its Peers again; zero means
	// 1s.
	JoinRetry time.Duration `env:"JOIN_RETRY" json:"join_retry,omitempty"`
	// ProbeInterval is how often a node probes a random peer; a peer that
	// does not answer is suspected, and declared dead about four intervals
	// later. Zero means 200ms, which detects a dead node in about a second
	// on a LAN or loopback (memberlist's LAN default is 1s, about five
	// seconds to detect); raise it on a slow or lossy network.
	ProbeInterval time.Duration `env:"PROBE_INTERVAL" json:"probe_interval,omitempty"`
	// GossipInterval is how often a node gossips queued messages to a few
	// peers. Endpoint state changes are also sent to every peer at once, so
	// this bounds only the repeat, not the first delivery. Zero means 50ms.
	GossipInterval time.Duration `env:"GOSSIP_INTERVAL" json:"gossip_interval,omitempty"`
}

// DefaultConfig returns a Config with every default spelled out and no
// peers.
func DefaultConfig() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	c.Listen = cmp.Or(c.Listen, "127.0.0.1:7946")
	c.JoinRetry = cmp.Or(c.JoinRetry, time.Second)
	c.ProbeInterval = cmp.Or(c.ProbeInterval, 200*time.Millisecond)
	c.GossipInterval = cmp.Or(c.GossipInterval, 50*time.Millisecond)
	return c
}

// Validate reports every invalid setting as a *tier.ConfigError (joined),
// naming the Config field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, problem, allowed string) {
		errs = append(errs, &tier.ConfigError{Field: field, Value: fmt.Sprint(value), Problem: problem, Allowed: allowed})
	}
	if c.Listen != "" {
		if _, _, err := splitIPPort(c.Listen, true); err != nil {
			bad("Listen", c.Listen, err.Error(), "ip:port, :port, or port 0 for a free one")
		}
	}
	if c.Advertise != "" {
		if _, _, err := splitIPPort(c.Advertise, false); err != nil {
			bad("Advertise", c.Advertise, err.Error(), "ip:port")
		}
	}
	for i, p := range c.Peers {
		if _, port, err := net.SplitHostPort(p); err != nil || port == "" {
			bad(fmt.Sprintf("Peers[%d]", i), p, "not host:port", "host:port")
		}
	}
	switch {
	case c.Key == "" && !c.Insecure:
		bad("Key", "", "required: gossip decides which endpoints take traffic, so it must be encrypted", "base64 of 16, 24 or 32 bytes, or Insecure for plain-text gossip")
	case c.Key != "" && c.Insecure:
		bad("Insecure", true, "set together with Key", "one of them")
	case c.Key != "":
		if _, err := decodeKey(c.Key); err != nil {
			// The value is a secret: name the field, never echo it.
			errs = append(errs, &tier.ConfigError{Field: "Key", Problem: err.Error(), Allowed: "base64 of 16, 24 or 32 bytes"})
		}
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"JoinRetry", c.JoinRetry}, {"ProbeInterval", c.ProbeInterval}, {"GossipInterval", c.GossipInterval}} {
		if d.d < 0 {
			bad(d.name, d.d, "must not be negative", "0 for the default")
		}
	}
	if c.ProbeInterval > 0 && c.ProbeInterval < 10*time.Millisecond {
		bad("ProbeInterval", c.ProbeInterval, "too short to tell a slow peer from a dead one", "10ms or more")
	}
	return errors.Join(errs...)
}

// splitIPPort splits an ip:port whose host is an IP literal (or empty, when
// emptyHost).
func splitIPPort(addr string, emptyHost bool) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.New("not host:port")
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, errors.New("bad port")
	}
	switch {
	case host == "" && emptyHost:
	case host == "":
		return "", 0, errors.New("no host")
	case net.ParseIP(host) == nil:
		return "", 0, errors.New("host must be an IP address")
	}
	return host, port, nil
}

func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64")
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("%d bytes; AES needs 16, 24 or 32", n)
	}
	return k, nil
}

// memberlistConfig is memberlist's LAN configuration tuned for quick
// failure detection and delivery: the front doors of one site share a LAN
// (or one machine), where round trips are well under a millisecond.
func (c Config) memberlistConfig(log *slog.Logger) *memberlist.Config {
	m := memberlist.DefaultLANConfig()
	m.ProbeInterval = c.ProbeInterval
	// A probe answers in well under a millisecond on a LAN; half an
	// interval leaves room for a busy peer before indirect probes start.
	m.ProbeTimeout = c.ProbeInterval / 2
	// Suspicion lasts SuspicionMult·ProbeInterval when no other node can
	// confirm it (always, in a pair): 4 × 200ms, so a killed node is
	// declared dead about a second after it stops answering.
	m.SuspicionMult = 4
	m.GossipInterval = c.GossipInterval
	m.GossipNodes = 3
	// Full state is exchanged on join and now and then to repair what
	// gossip lost; changes themselves go out at once.
	m.PushPullInterval = 15 * time.Second
	// Bounds a join or push/pull with a peer that does not answer, and so
	// how long Stop may wait for one in progress.
	m.TCPTimeout = 2 * time.Second
	// A node's name may come back at a new address once it has been dead
	// this long (a restart with a new IP).
	m.DeadNodeReclaimTime = 10 * time.Second
	m.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return m
}
