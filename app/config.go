package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/threetier/threetier/internal/configcheck"
	"github.com/threetier/threetier/tier"
)

// EnvPrefix prefixes the app tier's environment variables
// (THREETIER_APP_LISTEN, THREETIER_APP_MAX_IN_FLIGHT, ...).
const EnvPrefix = tier.EnvPrefix + "APP_"

// Defaults that a zero Config field stands for.
const (
	DefaultListen            = "127.0.0.1:8081"
	DefaultRequestTimeout    = 10 * time.Second
	DefaultMaxBodyBytes      = 4 << 20
	DefaultMaxInFlight       = 1024
	DefaultMinInFlight       = 4
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultShedRetryAfter    = time.Second
)

// Config configures the app server. Every zero field means the documented
// default, so Config{} is a working server; a negative value switches a
// limit off where the field says so, and is an error elsewhere. Load it from the environment with
// tier.LoadEnv(app.EnvPrefix, &cfg).
type Config struct {
	// Name names the instance in lifecycle logs and errors ("app-1"); zero
	// means "app".
	Name string `env:"NAME" json:"name,omitempty"`
	// Listen is the address to serve on; zero means DefaultListen.
	Listen string `env:"LISTEN" json:"listen"`

	// RequestTimeout bounds each request through its context; zero means
	// DefaultRequestTimeout, negative means none. A caller that sends its
	// deadline (tier.HeaderTimeout: the web tier and the front door send
	// what is left of theirs) makes it sooner, never later. Handlers see
	// the deadline in c.Request().Context(); guards, the data tier's
	// statements and the calls of an app.Client inherit it.
	RequestTimeout time.Duration `env:"REQUEST_TIMEOUT" json:"request_timeout"`

	// MaxBodyBytes caps request bodies in bytes (413 beyond it); zero means
	// DefaultMaxBodyBytes, negative means no cap.
	MaxBodyBytes int64 `env:"MAX_BODY_BYTES" json:"max_body_bytes"`

	// MaxInFlight caps the requests served at once; the rest are shed at
	// once with 503 and Retry-After. Zero means DefaultMaxInFlight, negative
	// means no cap.
	MaxInFlight int `env:"MAX_IN_FLIGHT" json:"max_in_flight"`
	// ShedLatency, when positive, makes the cap adaptive: while admitted
	// requests take longer than ShedLatency the cap shrinks (down to
	// MinInFlight), and it grows back toward MaxInFlight while they are
	// faster. Set it well above the latency of a healthy request: requests
	// that are always slower keep the cap at its floor. Zero keeps the cap
	// fixed.
	ShedLatency time.Duration `env:"SHED_LATENCY" json:"shed_latency"`
	// MinInFlight is the floor of the adaptive cap; zero means
	// DefaultMinInFlight.
	MinInFlight int `env:"MIN_IN_FLIGHT" json:"min_in_flight"`
	// ShedRetryAfter is the Retry-After sent with shed requests; zero means
	// DefaultShedRetryAfter.
	ShedRetryAfter time.Duration `env:"SHED_RETRY_AFTER" json:"shed_retry_after"`

	// CORSOrigins, when set, turns CORS on for these origins ("*" for any).
	CORSOrigins []string `env:"CORS_ORIGINS" envSeparator:"," json:"cors_origins"`

	// ReadHeaderTimeout, ReadTimeout and IdleTimeout go to the http.Server:
	// the first two stop clients that send slowly from holding a goroutine
	// each (the request timeout cannot interrupt a body read). Zero means
	// DefaultReadHeaderTimeout, DefaultReadTimeout and DefaultIdleTimeout;
	// a negative ReadTimeout means none.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT" json:"read_header_timeout"`
	ReadTimeout       time.Duration `env:"READ_TIMEOUT" json:"read_timeout"`
	IdleTimeout       time.Duration `env:"IDLE_TIMEOUT" json:"idle_timeout"`
	// MaxHeaderBytes bounds a request's header block (431 beyond); zero
	// means DefaultMaxHeaderBytes, the front door's own bound, so that what
	// a door lets through reaches the app tier.
	MaxHeaderBytes int `env:"MAX_HEADER_BYTES" json:"max_header_bytes"`

	// HealthPath and ReadyPath serve liveness and readiness; zero means
	// "/healthz" and "/readyz", "-" means not served.
	HealthPath string `env:"HEALTH_PATH" json:"health_path"`
	ReadyPath  string `env:"READY_PATH" json:"ready_path"`
	// MetricsPath, when set, serves the registry given with WithRegistry
	// (when it is a *prometheus.Registry) on the public listener at this
	// path. Empty (or "-") means not served: metrics belong on an admin
	// listener (tier.NewAdmin), which binds to loopback.
	MetricsPath string `env:"METRICS_PATH" json:"metrics_path"`

	// Limits bounds what a client can hold on the listener:
	// THREETIER_APP_BODY_TIMEOUT, _SEND_TIMEOUT, _MAX_CONNS.
	tier.Limits
}

// DefaultConfig returns a Config with every default spelled out.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "app"
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MinInFlight == 0 {
		c.MinInFlight = DefaultMinInFlight
	}
	if c.MaxInFlight > 0 && c.MinInFlight > c.MaxInFlight {
		c.MinInFlight = c.MaxInFlight
	}
	if c.ShedRetryAfter == 0 {
		c.ShedRetryAfter = DefaultShedRetryAfter
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.HealthPath == "" {
		c.HealthPath = "/healthz"
	}
	if c.ReadyPath == "" {
		c.ReadyPath = "/readyz"
	}
	return c
}

// Validate reports settings that cannot work, naming the Config field
// (tier.LoadEnv names the variable).
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, v any, problem string) {
		errs = append(errs, &tier.ConfigError{Field: field, Value: fmt.Sprint(v), Problem: problem})
	}
	if c.ShedLatency < 0 {
		bad("ShedLatency", c.ShedLatency, "must not be negative")
	}
	if c.ShedLatency > 0 && c.MaxInFlight < 0 {
		bad("ShedLatency", c.ShedLatency, "needs MaxInFlight: an adaptive cap needs a cap")
	}
	if c.MinInFlight < 0 {
		bad("MinInFlight", c.MinInFlight, "must not be negative")
	}
	if c.ShedRetryAfter < 0 {
		bad("ShedRetryAfter", c.ShedRetryAfter, "must not be negative")
	}
	if c.MaxConns < 0 {
		bad("MaxConns", c.MaxConns, "must not be negative")
	}
	if c.MaxHeaderBytes < 0 {
		bad("MaxHeaderBytes", c.MaxHeaderBytes, "must not be negative")
	}
	for _, p := range []struct{ name, v string }{
		{"HealthPath", c.HealthPath}, {"ReadyPath", c.ReadyPath}, {"MetricsPath", c.MetricsPath},
	} {
		if err := configcheck.RoutePath(p.name, p.v); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Guard defaults that a zero GuardConfig field stands for.
const (
	DefaultCallTimeout         = 2 * time.Second
	DefaultConsecutiveFailures = 5
	DefaultFailureRatio        = 0.5
	DefaultMinCalls            = 20
	DefaultWindow              = 10 * time.Second
	DefaultOpenFor             = 200 * time.Millisecond
	DefaultMaxOpenFor          = 800 * time.Millisecond
	DefaultRideThrough         = 3 * time.Second
	DefaultHalfOpenProbes      = 1
	DefaultAttempts            = 3
	DefaultBackoff             = 20 * time.Millisecond
	DefaultMaxBackoff          = time.Second
	DefaultBudgetRatio         = 0.2
	DefaultBudgetMinPerSecond  = 10
	DefaultMaxConcurrent       = 256
	DefaultMaxWait             = 100 * time.Millisecond
)

// GuardConfig configures the guard of one dependency. Every zero field
// means the documented default, so GuardConfig{} is a sensible guard; a
// negative value switches that protection off where the field says so, and
// is an error elsewhere. The retry knobs are named as balancer.RetryConfig
// and data.TxConfig name theirs. Load one per dependency
// with tier.LoadEnv(app.EnvPrefix+"GUARD_USERS_", &cfg).
type GuardConfig struct {
	// Timeout bounds each attempt through its context; zero means
	// DefaultCallTimeout, negative means none (the caller's deadline only).
	// Either one passing while the dependency is silent counts against it.
	Timeout time.Duration `env:"TIMEOUT" json:"timeout"`

	// ConsecutiveFailures trips the breaker after this many failures in a
	// row; zero means DefaultConsecutiveFailures, negative means never.
	ConsecutiveFailures int `env:"CONSECUTIVE_FAILURES" json:"consecutive_failures"`
	// FailureRatio trips the breaker when at least this share of the calls
	// within Window failed, once Window holds MinCalls calls; zero means
	// DefaultFailureRatio, negative means never.
	FailureRatio float64 `env:"FAILURE_RATIO" json:"failure_ratio"`
	// MinCalls is the volume below which FailureRatio is not judged; zero
	// means DefaultMinCalls.
	MinCalls int `env:"MIN_CALLS" json:"min_calls"`
	// Window is the rolling window (ten buckets) over which calls are
	// counted; zero means DefaultWindow.
	Window time.Duration `env:"WINDOW" json:"window"`
	// SlowCall, when positive, counts a call that took longer as a failure
	// even if it succeeded (its result is still returned): a dependency
	// that slows down trips the breaker before it times out. Zero means off.
	SlowCall time.Duration `env:"SLOW_CALL" json:"slow_call"`
	// OpenFor is how long a breaker that trips stays open, rejecting
	// calls, before it lets probes through (half-open). Each probe that
	// fails opens it again for twice the last period, up to MaxOpenFor;
	// closing starts over from OpenFor. A short first period probes a
	// dependency that only blinked (a database restart) again soon. Zero
	// means DefaultOpenFor.
	OpenFor time.Duration `env:"OPEN_FOR" json:"open_for"`
	// MaxOpenFor caps that back-off: a dependency that comes back waits at
	// most this long for the next probe. Zero means DefaultMaxOpenFor; at
	// or below OpenFor, every open period lasts OpenFor.
	MaxOpenFor time.Duration `env:"MAX_OPEN_FOR" json:"max_open_for"`
	// RideThrough bounds how long, in all, an idempotent call waits for an
	// open breaker to let it through, rather than fail at once, within the
	// caller's deadline (see Guard). Zero means DefaultRideThrough,
	// negative means no waiting. Calls that are not idempotent never wait
	// (see Call: those made while serving a safe method are), nor do calls
	// whose Fallback can answer (see Call.Fallback).
	RideThrough time.Duration `env:"RIDE_THROUGH" json:"ride_through"`
	// HalfOpenProbes is how many probe calls a half-open breaker lets
	// through; as many successes close it, one failure opens it again. Zero
	// means DefaultHalfOpenProbes.
	HalfOpenProbes int `env:"HALF_OPEN_PROBES" json:"half_open_probes"`

	// Attempts bounds the attempts of an idempotent call, the first one
	// included; zero means DefaultAttempts, 1 or negative means no
	// retries. Calls that are not idempotent are never retried.
	Attempts int `env:"ATTEMPTS" json:"attempts"`
	// Backoff and MaxBackoff shape the wait before retry n: a random
	// duration between half and all of min(MaxBackoff, Backoff*2^(n-1)).
	// Zero means DefaultBackoff and DefaultMaxBackoff; negative is invalid.
	Backoff    time.Duration `env:"BACKOFF" json:"backoff"`
	MaxBackoff time.Duration `env:"MAX_BACKOFF" json:"max_backoff"`
	// BudgetRatio and BudgetMinPerSecond form the retry budget: over the
	// last ten seconds, retries may add at most BudgetRatio of the calls,
	// plus BudgetMinPerSecond so that a quiet dependency can still retry.
	// Zero means DefaultBudgetRatio and DefaultBudgetMinPerSecond; negative
	// means none of that part.
	BudgetRatio        float64 `env:"BUDGET_RATIO" json:"budget_ratio"`
	BudgetMinPerSecond float64 `env:"BUDGET_MIN_PER_SECOND" json:"budget_min_per_second"`

	// MaxConcurrent caps the calls in flight to the dependency (the
	// bulkhead). Zero means the primary's pool for a guard made
	// WithCapacity (a *data.DB's MaxOpenConns), so that the guard admits
	// no more calls than the pool serves at once, and DefaultMaxConcurrent
	// otherwise; negative means no cap.
	MaxConcurrent int `env:"MAX_CONCURRENT" json:"max_concurrent"`
	// ReadReserve is the part of MaxConcurrent that only reads may use:
	// writes are admitted up to MaxConcurrent − ReadReserve, reads up to
	// MaxConcurrent (plus the standbys' pools, for a guard made
	// WithCapacity), each kind on a bulkhead of its own. A writer waiting
	// for a row lock holds its connection; writers can then never hold the
	// connections the reads need. Zero means a quarter of MaxConcurrent,
	// rounded up, for a guard made WithCapacity, and none otherwise (reads
	// and writes share one bulkhead); negative means none. It is kept below
	// MaxConcurrent. A call reads when its Call says ReadOnly, or when it
	// is made while serving a safe method and is not NotIdempotent.
	ReadReserve int `env:"READ_RESERVE" json:"read_reserve"`
	// MaxPerKey caps the calls in flight that name the same key (see
	// Call.Keys: the rows a transaction locks, say), so that clients who
	// all want one hot row hold at most that many slots, and connections,
	// however many they are. The others wait for one of them, holding
	// nothing, within the guard's Timeout, and are then refused with
	// ErrKeyBusy. Zero means a third of the writes' share (MaxConcurrent
	// − ReadReserve), at least 1; negative, or no MaxConcurrent, means no
	// cap.
	MaxPerKey int `env:"MAX_PER_KEY" json:"max_per_key"`
	// MaxWait is how long a call that finds the bulkhead full waits while
	// no call ends: it waits as long as calls keep ending and freeing
	// slots (a burst drains), within the guard's Timeout, and is refused
	// (503 with Retry-After) once none has ended for MaxWait (a dependency
	// that stopped answering costs its callers little). Zero means
	// DefaultMaxWait; negative means no wait (a call is refused at once
	// when the bulkhead is full). A call that waited out an open breaker
	// may wait for a slot with what is left of its RideThrough, if that is
	// longer.
	MaxWait time.Duration `env:"MAX_WAIT" json:"max_wait"`

	// UnreadyWhenOpen makes the tier unready (/readyz 503) while this
	// breaker is open. Off by default: when every instance shares the
	// dependency, all of them going unready turns a degraded service into
	// an outage.
	UnreadyWhenOpen bool `env:"UNREADY_WHEN_OPEN" json:"unready_when_open"`
}

// DefaultGuardConfig returns a GuardConfig with every default spelled
// out, but for the bulkhead's: MaxConcurrent, ReadReserve and MaxPerKey
// stay zero, their defaults following the dependency's capacity (see
// WithCapacity); Guard.Config reports them as a guard applies them.
func DefaultGuardConfig() GuardConfig {
	return GuardConfig{}.withDefaults()
}

func (c GuardConfig) withDefaults() GuardConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultCallTimeout
	}
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if c.FailureRatio == 0 {
		c.FailureRatio = DefaultFailureRatio
	}
	if c.MinCalls == 0 {
		c.MinCalls = DefaultMinCalls
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.OpenFor == 0 {
		c.OpenFor = DefaultOpenFor
	}
	if c.MaxOpenFor == 0 {
		c.MaxOpenFor = DefaultMaxOpenFor
	}
	c.MaxOpenFor = max(c.MaxOpenFor, c.OpenFor)
	if c.RideThrough == 0 {
		c.RideThrough = DefaultRideThrough
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = DefaultHalfOpenProbes
	}
	if c.Attempts == 0 {
		c.Attempts = DefaultAttempts
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.BudgetRatio == 0 {
		c.BudgetRatio = DefaultBudgetRatio
	}
	if c.BudgetMinPerSecond == 0 {
		c.BudgetMinPerSecond = DefaultBudgetMinPerSecond
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	return c
}

// slots are the sizes of a guard's bulkheads; zero means no cap.
type slots struct {
	reads, writes int // writes equal to reads: one bulkhead for both
	perKey        int
}

// sized fills MaxConcurrent, ReadReserve and MaxPerKey for a dependency of
// the given capacity (primary zero: unknown, see WithCapacity), and
// returns the bulkheads' sizes. A reserve or a key cap that is off is
// reported as -1.
func (c GuardConfig) sized(primary, standbys int) (GuardConfig, slots) {
	known := primary > 0
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
		if known {
			c.MaxConcurrent = primary
		}
	}
	if c.MaxConcurrent < 0 {
		c.ReadReserve, c.MaxPerKey = -1, -1
		return c, slots{}
	}
	if c.ReadReserve == 0 && known {
		c.ReadReserve = (c.MaxConcurrent + 3) / 4
	}
	c.ReadReserve = min(c.ReadReserve, c.MaxConcurrent-1)
	if c.ReadReserve <= 0 {
		c.ReadReserve = -1
	}
	s := slots{reads: c.MaxConcurrent, writes: c.MaxConcurrent - max(c.ReadReserve, 0)}
	if known {
		s.reads += standbys
	}
	if c.MaxPerKey == 0 {
		c.MaxPerKey = max(s.writes/3, 1)
	}
	if c.MaxPerKey < 0 {
		c.MaxPerKey = -1
	} else {
		s.perKey = c.MaxPerKey
	}
	return c, s
}

// Validate reports settings that cannot work, naming the GuardConfig field
// (tier.LoadEnv names the variable under the guard's own prefix).
func (c GuardConfig) Validate() error {
	var errs []error
	bad := func(field string, v any, problem string) {
		errs = append(errs, &tier.ConfigError{Field: field, Value: fmt.Sprint(v), Problem: problem})
	}
	if c.FailureRatio > 1 {
		bad("FailureRatio", c.FailureRatio, "must be at most 1")
	}
	if c.MinCalls < 0 {
		bad("MinCalls", c.MinCalls, "must not be negative")
	}
	if c.Window < 0 {
		bad("Window", c.Window, "must not be negative")
	}
	if c.SlowCall < 0 {
		bad("SlowCall", c.SlowCall, "must not be negative")
	}
	if c.OpenFor < 0 {
		bad("OpenFor", c.OpenFor, "must not be negative")
	}
	if c.MaxOpenFor < 0 {
		bad("MaxOpenFor", c.MaxOpenFor, "must not be negative")
	}
	if c.HalfOpenProbes < 0 {
		bad("HalfOpenProbes", c.HalfOpenProbes, "must not be negative")
	}
	if c.Backoff < 0 {
		bad("Backoff", c.Backoff, "must not be negative")
	}
	if c.MaxBackoff < 0 {
		bad("MaxBackoff", c.MaxBackoff, "must not be negative")
	}
	if c.MaxConcurrent > 0 && c.ReadReserve >= c.MaxConcurrent {
		bad("ReadReserve", c.ReadReserve, "must be below MaxConcurrent: writes need a slot")
	}
	return errors.Join(errs...)
}
