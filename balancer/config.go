package balancer

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threetier/threetier/tier"
)

// EnvPrefix is the default prefix of the balancer's environment variables:
// tier.LoadEnv(balancer.EnvPrefix, &cfg) reads THREETIER_BALANCER_ENDPOINTS and
// so on. A service with several pools gives each its own prefix, and errors
// name the variables under it. A set variable replaces the value a field
// already holds; unset ones leave it, and zero fields mean the defaults.
const EnvPrefix = tier.EnvPrefix + "BALANCER_"

// A Policy chooses the endpoint for each request of a pool (Config.Policy).
type Policy string

// The policies a pool knows.
const (
	// PolicyRoundRobin is smooth weighted round robin: endpoints take turns in
	// proportion to their weights, interleaved rather than in bursts.
	PolicyRoundRobin Policy = "round_robin"
	// PolicyLeastRequest picks two distinct endpoints at random and sends to
	// the one with fewer requests in flight per unit of weight.
	PolicyLeastRequest Policy = "least_request"
	// PolicyP2CEWMA picks two distinct endpoints at random and sends to the
	// one with the lower latency (peak EWMA) times requests in flight.
	PolicyP2CEWMA Policy = "p2c_ewma"
	// PolicyHash sends requests with the same key (Config.HashKey) to the same
	// endpoint, by consistent hashing with bounded load.
	PolicyHash Policy = "hash"
	// PolicyFirst sends everything to the first available endpoint in the
	// order given; the next one takes over when it fails.
	PolicyFirst Policy = "first"
	// PolicyRandom picks an endpoint at random, in proportion to weights.
	PolicyRandom Policy = "random"
)

var policies = []Policy{PolicyRoundRobin, PolicyLeastRequest, PolicyP2CEWMA, PolicyHash, PolicyFirst, PolicyRandom}

// ParsePolicy returns the policy named s, or a *tier.ConfigError for the
// field Policy that lists the names it knows.
func ParsePolicy(s string) (Policy, error) {
	if p := Policy(s); slices.Contains(policies, p) {
		return p, nil
	}
	return "", &tier.ConfigError{Field: "Policy", Value: s, Problem: "unknown policy", Allowed: policyNames()}
}

// policyNames lists the policies for an error message.
func policyNames() string {
	names := make([]string, len(policies))
	for i, p := range policies {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// Config describes one pool: the endpoints of one upstream and how to
// balance, check and retry over them. The zero value of every field but
// Endpoints is a working default, documented on the field; DefaultConfig
// returns them filled in.
type Config struct {
	// Name names the pool in logs, metrics and errors; zero means "balancer".
	Name string `env:"NAME" json:"name"`
	// Endpoints are base URLs ("http://127.0.0.1:8081"): scheme and host, no
	// path. They may be empty when a Discoverer supplies the endpoints.
	Endpoints []string `env:"ENDPOINTS" envSeparator:"," json:"endpoints"`
	// Backups take traffic only when no endpoint of Endpoints is healthy.
	Backups []string `env:"BACKUPS" envSeparator:"," json:"backups,omitempty"`
	// Policy chooses the endpoint for each request; zero means round_robin.
	// See the Policy constants.
	Policy Policy `env:"POLICY" json:"policy"`
	// HashKey is where the hash policy finds a request's affinity key:
	// "header:<name>", "cookie:<name>", "client_addr" or "path". Zero means
	// "client_addr". A request without a key is balanced by least request.
	HashKey string `env:"HASH_KEY" json:"hash_key,omitempty"`
	// HashLoadFactor bounds the load of any endpoint under the hash policy to
	// this factor times the average; a key whose endpoint is full moves to the
	// next one on the ring. Zero means 1.25; it must be 1 or more.
	HashLoadFactor float64 `env:"HASH_LOAD_FACTOR" json:"hash_load_factor,omitempty"`
	// PanicThreshold, a percentage: when fewer than this share of the primary
	// endpoints are healthy, requests spread over all of them, healthy or not,
	// rather than overload the few that are left. Zero means panic only when
	// no endpoint at all is healthy (and no backup is).
	PanicThreshold int `env:"PANIC_THRESHOLD" json:"panic_threshold,omitempty"`
	// SlowStart is the window over which a new or recovered endpoint's share
	// of traffic ramps from 10% to its full weight, in steps of a tenth of
	// the window; not when it is the only endpoint serving, and not under the
	// hash policy, which keeps keys where they belong. Zero means no ramp.
	SlowStart time.Duration `env:"SLOW_START" json:"slow_start,omitempty"`
	// EWMADecay is the time constant of the latency average used by p2c_ewma;
	// zero means 10s.
	EWMADecay time.Duration `env:"EWMA_DECAY" json:"ewma_decay,omitempty"`
	// Discovery finds endpoints in DNS: "dns://name:port" (A/AAAA records)
	// or "srv://_service._proto.name" (SRV records); see ParseDiscovery.
	// A WithDiscovery option takes precedence.
	Discovery string `env:"DISCOVERY" json:"discovery,omitempty"`
	// DiscoveryInterval is how often a Discoverer is asked again (it is also
	// asked soon after an endpoint fails to connect); zero means 30s.
	DiscoveryInterval time.Duration `env:"DISCOVERY_INTERVAL" json:"discovery_interval,omitempty"`

	// ConnectTimeout bounds connecting to an endpoint (with the TLS
	// handshake) on the pool's own transport; zero means 5s.
	ConnectTimeout time.Duration `env:"CONNECT_TIMEOUT" json:"connect_timeout,omitempty"`
	// TLSServerName is the name https endpoints are verified against (and
	// sent as SNI) on the pool's own transport. Zero means the endpoint's
	// host, or, for endpoints found by Discovery, the name looked up: such
	// endpoints are addresses, and their certificates name the service.
	TLSServerName string `env:"TLS_SERVER_NAME" json:"tls_server_name,omitempty"`

	Health  HealthConfig  `envPrefix:"HEALTH_" json:"health"`
	Outlier OutlierConfig `envPrefix:"OUTLIER_" json:"outlier"`
	Retry   RetryConfig   `envPrefix:"RETRY_" json:"retry"`
}

// HealthConfig sets up active health checks: a GET of Path on every endpoint
// every Interval. With no Path there are no active checks, and endpoints are
// judged by the requests they serve (OutlierConfig).
type HealthConfig struct {
	// Path is requested on each endpoint ("/healthz"); zero disables checks.
	Path string `env:"PATH" json:"path,omitempty"`
	// Interval between checks of one endpoint, each shifted by up to ±10% so
	// that pools do not check in lock step; zero means 5s.
	Interval time.Duration `env:"INTERVAL" json:"interval,omitempty"`
	// Timeout bounds one check; zero means 2s (and never more than Interval).
	Timeout time.Duration `env:"TIMEOUT" json:"timeout,omitempty"`
	// Rise is how many checks in a row must pass to bring an endpoint back;
	// zero means 2.
	Rise int `env:"RISE" json:"rise,omitempty"`
	// Fall is how many checks in a row must fail to take an endpoint out;
	// zero means 3.
	Fall int `env:"FALL" json:"fall,omitempty"`
	// ExpectStatus is the status a passing check answers; zero means any 2xx
	// or 3xx.
	ExpectStatus int `env:"EXPECT_STATUS" json:"expect_status,omitempty"`
}

// OutlierConfig sets up passive outlier detection: an endpoint whose
// requests fail (connect errors, timeouts, 5xx) several times in a row is
// ejected for a while, longer each time it is ejected again.
//
// An ejection ends early when the endpoint proves it serves again: Health.Rise
// active checks in a row pass after it began, or it answers well a request
// sent to it after it began. An ejected endpoint still gets requests when
// nothing better is left: in panic (see PanicThreshold), and as the last
// resort of a retry that has tried every endpoint in rotation.
//
// A deliberate refusal, 503 Service Unavailable with a Retry-After header,
// is not such a failure unless CountRefusals says so: it is what a tier
// answers when a dependency's breaker is open, when it sheds load, or when
// it has no endpoint left itself. The endpoint is working and says that
// what it depends on, or its capacity, is not; ejecting it would move its
// load onto endpoints that share the same dependency, and keep it out
// after the dependency is back. A refusal neither adds to nor ends an
// endpoint's run of failures; it is still retried per Retry.On.
type OutlierConfig struct {
	// Disable turns passive detection off.
	Disable bool `env:"DISABLE" json:"disable,omitempty"`
	// CountRefusals counts 503 answers with Retry-After as failures of
	// the endpoint too, as any other 5xx.
	CountRefusals bool `env:"COUNT_REFUSALS" json:"count_refusals,omitempty"`
	// ConsecutiveFailures in a row eject an endpoint; zero means 5.
	ConsecutiveFailures int `env:"CONSECUTIVE_FAILURES" json:"consecutive_failures,omitempty"`
	// BaseEjection is the first ejection's length; the n-th lasts
	// BaseEjection·2ⁿ⁻¹, at most MaxEjection. Zero means 5s.
	BaseEjection time.Duration `env:"BASE_EJECTION" json:"base_ejection,omitempty"`
	// MaxEjection caps one ejection; zero means 5m.
	MaxEjection time.Duration `env:"MAX_EJECTION" json:"max_ejection,omitempty"`
	// MaxEjectionPercent caps the share of endpoints ejected at once,
	// counting the one about to be (so with 50, one of two or three, two of
	// four); a lone endpoint is never ejected below 100. Zero means 50.
	MaxEjectionPercent int `env:"MAX_EJECTION_PERCENT" json:"max_ejection_percent,omitempty"`
}

// RetryConfig bounds retries. app.GuardConfig and data.TxConfig name their
// retry knobs alike: Attempts, Backoff, MaxBackoff, BudgetRatio,
// BudgetMinPerSecond. A request is retried on a different endpoint
// when its method is idempotent or it carries an Idempotency-Key header, or
// whatever its method when it provably never reached the endpoint (the
// connection was refused).
type RetryConfig struct {
	// Attempts is the most tries per request, the first included; zero
	// means 3, 1 or negative means no retries, and more than 8 counts as 8.
	Attempts int `env:"ATTEMPTS" json:"attempts,omitempty"`
	// On lists the response statuses that are retried (idempotent requests
	// only); zero means 502, 503 and 504.
	On []int `env:"ON" envSeparator:"," json:"on,omitempty"`
	// BudgetRatio caps retries at this share of the requests of the last ten
	// seconds, so that a failing cluster is not stormed; zero means 0.2,
	// negative means none of that part.
	BudgetRatio float64 `env:"BUDGET_RATIO" json:"budget_ratio,omitempty"`
	// BudgetMinPerSecond adds a reserve of this many retries a second (over
	// the same ten seconds) to the budget, so that a quiet pool can still
	// retry; zero means 10, negative means none of that part.
	BudgetMinPerSecond float64 `env:"BUDGET_MIN_PER_SECOND" json:"budget_min_per_second,omitempty"`
	// Backoff is the base wait before a retry, doubled each time with full
	// jitter; zero means 5ms, negative is invalid.
	Backoff time.Duration `env:"BACKOFF" json:"backoff,omitempty"`
	// MaxBackoff caps the wait; zero means 250ms, negative is invalid.
	MaxBackoff time.Duration `env:"MAX_BACKOFF" json:"max_backoff,omitempty"`
	// AttemptTimeout bounds each attempt until its response headers; an
	// attempt that overruns it counts as a failure of the endpoint and is
	// retried (when safe) within the caller's own deadline. Zero means no
	// bound other than the caller's context. Whatever it says, an attempt
	// ends with the request's deadline (the context's, or the proxy's
	// ResponseTimeout), and a retry is not made when the deadline would
	// come before it, its back-off waited, could begin.
	AttemptTimeout time.Duration `env:"ATTEMPT_TIMEOUT" json:"attempt_timeout,omitempty"`
	// ReplayBytes is the largest request body kept in memory so that it can
	// be sent again; larger bodies are streamed and not retried once sent.
	// Zero means 64 KiB. It is no cap: ProxyConfig.MaxBodyBytes is.
	ReplayBytes int64 `env:"REPLAY_BYTES" json:"replay_bytes,omitempty"`
}

// DefaultConfig returns a Config with every default filled in and no
// endpoints.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	setDefault(&c.Name, "balancer")
	setDefault(&c.Policy, PolicyRoundRobin)
	if c.Policy == PolicyHash {
		setDefault(&c.HashKey, "client_addr")
	}
	setDefault(&c.HashLoadFactor, 1.25)
	setDefault(&c.EWMADecay, 10*time.Second)
	setDefault(&c.DiscoveryInterval, 30*time.Second)
	setDefault(&c.ConnectTimeout, 5*time.Second)

	setDefault(&c.Health.Interval, 5*time.Second)
	setDefault(&c.Health.Timeout, 2*time.Second)
	c.Health.Timeout = min(c.Health.Timeout, c.Health.Interval)
	setDefault(&c.Health.Rise, 2)
	setDefault(&c.Health.Fall, 3)

	setDefault(&c.Outlier.ConsecutiveFailures, 5)
	setDefault(&c.Outlier.BaseEjection, 5*time.Second)
	setDefault(&c.Outlier.MaxEjection, 5*time.Minute)
	setDefault(&c.Outlier.MaxEjectionPercent, 50)

	setDefault(&c.Retry.Attempts, 3)
	c.Retry.Attempts = max(c.Retry.Attempts, 1)
	if c.Retry.On == nil {
		c.Retry.On = []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	}
	setDefault(&c.Retry.BudgetRatio, 0.2)
	setDefault(&c.Retry.BudgetMinPerSecond, 10)
	setDefault(&c.Retry.Backoff, 5*time.Millisecond)
	setDefault(&c.Retry.MaxBackoff, 250*time.Millisecond)
	setDefault(&c.Retry.ReplayBytes, 64<<10)
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every invalid setting as a *tier.ConfigError (joined),
// naming the Config field (tier.LoadEnv names the variable).
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, problem, allowed string) {
		errs = append(errs, &tier.ConfigError{Field: field, Value: fmt.Sprint(value), Problem: problem, Allowed: allowed})
	}
	for i, raw := range c.Endpoints {
		if _, err := parseEndpointURL(raw); err != nil {
			bad(fmt.Sprintf("Endpoints[%d]", i), raw, err.Error(), "http://host:port or https://host:port")
		}
	}
	for i, raw := range c.Backups {
		if _, err := parseEndpointURL(raw); err != nil {
			bad(fmt.Sprintf("Backups[%d]", i), raw, err.Error(), "http://host:port or https://host:port")
		}
	}
	if c.Discovery != "" {
		if _, err := ParseDiscovery(c.Discovery); err != nil {
			bad("Discovery", c.Discovery, err.Error(), "dns://name:port, srv://_service._proto.name")
		}
	}
	if c.Policy != "" {
		if _, err := ParsePolicy(string(c.Policy)); err != nil {
			errs = append(errs, err)
		}
	}
	if c.HashKey != "" {
		if _, err := parseHashKey(c.HashKey); err != nil {
			bad("HashKey", c.HashKey, err.Error(), "header:<name>, cookie:<name>, client_addr, path")
		}
	}
	if c.HashLoadFactor != 0 && c.HashLoadFactor < 1 {
		bad("HashLoadFactor", c.HashLoadFactor, "must be 1 or more", "")
	}
	if c.PanicThreshold < 0 || c.PanicThreshold > 100 {
		bad("PanicThreshold", c.PanicThreshold, "must be a percentage", "0 to 100")
	}
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"SlowStart", c.SlowStart}, {"EWMADecay", c.EWMADecay}, {"DiscoveryInterval", c.DiscoveryInterval}, {"ConnectTimeout", c.ConnectTimeout},
		{"Health.Interval", c.Health.Interval}, {"Health.Timeout", c.Health.Timeout},
		{"Outlier.BaseEjection", c.Outlier.BaseEjection}, {"Outlier.MaxEjection", c.Outlier.MaxEjection},
		{"Retry.Backoff", c.Retry.Backoff}, {"Retry.MaxBackoff", c.Retry.MaxBackoff}, {"Retry.AttemptTimeout", c.Retry.AttemptTimeout},
	}
	for _, d := range durations {
		if d.d < 0 {
			bad(d.name, d.d, "must not be negative", "0 for the default")
		}
	}
	ints := []struct {
		name string
		v    int
	}{
		{"Health.Rise", c.Health.Rise}, {"Health.Fall", c.Health.Fall},
		{"Outlier.ConsecutiveFailures", c.Outlier.ConsecutiveFailures},
	}
	for _, n := range ints {
		if n.v < 0 {
			bad(n.name, n.v, "must not be negative", "0 for the default")
		}
	}
	if c.Health.Path != "" && !strings.HasPrefix(c.Health.Path, "/") {
		bad("Health.Path", c.Health.Path, "must start with /", "")
	}
	if s := c.Health.ExpectStatus; s != 0 && (s < 100 || s > 599) {
		bad("Health.ExpectStatus", s, "not an HTTP status", "100 to 599, or 0 for any 2xx or 3xx")
	}
	if p := c.Outlier.MaxEjectionPercent; p < 0 || p > 100 {
		bad("Outlier.MaxEjectionPercent", p, "must be a percentage", "0 to 100")
	}
	for _, s := range c.Retry.On {
		if s < 100 || s > 599 {
			bad("Retry.On", s, "not an HTTP status", "100 to 599")
		}
	}
	if c.Retry.ReplayBytes < 0 {
		bad("Retry.ReplayBytes", c.Retry.ReplayBytes, "must not be negative", "")
	}
	return errors.Join(errs...)
}

// parseEndpointURL accepts "http(s)://host[:port]" with nothing after the
// host but an optional "/", and returns it reduced to scheme and host.
func parseEndpointURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, errors.New("not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("scheme must be http or https")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("no host")
	case u.Path != "" && u.Path != "/":
		return nil, errors.New("must not have a path")
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, errors.New("must not have a query, fragment or user info")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("bad port")
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}, nil
}
