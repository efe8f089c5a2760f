package tier

import (
	"errors"
	"reflect"
	"slices"
	"strings"
)

// An Env loads a service's configs from one environment and remembers
// every variable they read, so that Check can report the THREETIER_
// variables nothing reads: a misspelt name would otherwise be ignored
// without a word, and its setting silently left at the default.
//
//	e := tier.NewEnv(os.Environ())
//	err := errors.Join(e.Load(data.EnvPrefix, &dataCfg), e.Load(web.EnvPrefix, &webCfg), e.Check())
type Env struct {
	environ []string
	known   map[string]bool
}

// NewEnv returns an Env over environ, a "KEY=value" list (os.Environ()).
func NewEnv(environ []string) *Env {
	return &Env{environ: environ, known: make(map[string]bool)}
}

// Load is LoadEnvFrom over the Env's list, after Declare.
func (e *Env) Load(prefix string, cfg any) error {
	e.Declare(prefix, cfg)
	return LoadEnvFrom(e.environ, prefix, cfg)
}

// Declare records every variable cfg (a pointer to a Config, or a Config)
// can read under prefix as known, set or not, for a Config loaded by other
// means: LoadEnvFrom over a list with flags added, say.
func (e *Env) Declare(prefix string, cfg any) {
	for _, f := range envFields(reflect.TypeOf(cfg), "", prefix) {
		e.known[f.Var] = true
	}
}

// Lookup returns the value of the variable name, as os.LookupEnv, and
// records name as known: for the variables a service reads itself.
func (e *Env) Lookup(name string) (string, bool) {
	e.known[name] = true
	var value string
	var found bool
	for _, kv := range e.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			value, found = v, true // the last one wins, as in os.Getenv
		}
	}
	return value, found
}

// Known records names as read elsewhere, so that Check accepts them.
func (e *Env) Known(names ...string) {
	for _, n := range names {
		e.known[n] = true
	}
}

// testEnvPrefix starts the variables that test suites read (such as
// THREETIER_TEST_POSTGRES, the DSN of the tests' PostgreSQL). A service run
// inside a test sees them, so Check leaves them alone.
const testEnvPrefix = EnvPrefix + "TEST_"

// Check reports every variable in the list that starts with EnvPrefix (but
// not THREETIER_TEST_) and that no Load, Lookup or Known declared, as a
// *ConfigError naming it and, when one is close, the known name it
// likely misspells (joined, in name order). Call it once every config is loaded. Values are not shown: a
// misspelt DSN holds a password.
func (e *Env) Check() error {
	known := make([]string, 0, len(e.known))
	for k := range e.known {
		known = append(known, k)
	}
	slices.Sort(known)
	var unknown []string
	for _, kv := range e.environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, EnvPrefix) && !strings.HasPrefix(k, testEnvPrefix) && !e.known[k] && !slices.Contains(unknown, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	var errs []error
	for _, k := range unknown {
		ce := &ConfigError{Var: k, Problem: "unknown variable"}
		if near := nearest(k, known); near != "" {
			ce.Problem += "; did you mean " + near + "?"
		}
		errs = append(errs, ce)
	}
	return errors.Join(errs...)
}

// nearest returns the name in names closest to s by edit distance, the
// first of equals, when it is close enough to be a likely misspelling of
// it: at most a third of s's own part (after EnvPrefix) differs, and at
// least one edit is allowed. Otherwise "": a variable meant for another
// program (THREETIER_WEB_ROOT where only the log settings are read) has
// no near name, and naming a far one would only mislead.
func nearest(s string, names []string) string {
	limit := max(1, len(strings.TrimPrefix(s, EnvPrefix))/3)
	best, bestDist := "", limit+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
