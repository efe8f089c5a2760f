package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// frameworkModule is the module the written service requires.
const frameworkModule = "github.com/threetier/threetier"

// options are the command line: what to write, and where.
type options struct {
	spec  spec
	dir   string
	force bool
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	var replace string
	fl := flag.NewFlagSet("new", flag.ContinueOnError)
	// Errors are reported as one line by the caller; only -h shows the
	// usage.
	fl.SetOutput(io.Discard)
	fl.Usage = func() {}
	fl.StringVar(&o.spec.Module, "module", "", "the new service's module path, such as example.com/orders (required)")
	fl.StringVar(&o.spec.Resource, "resource", "items", "the first resource: its table, its /api/ route and its Go type (singular)")
	fl.BoolVar(&o.spec.Postgres, "postgres", false, "make PostgreSQL the default database instead of an embedded SQLite file")
	fl.BoolVar(&o.spec.FrontDoor, "front-door", false, "add the balancer role: front doors in a cluster, in front of the web tier")
	fl.StringVar(&replace, "replace", "", "a local checkout of "+frameworkModule+" to build against (a replace directive)")
	fl.BoolVar(&o.force, "force", false, "write into a directory that is not empty, overwriting files")
	// Flags may come after the directory too: parse what follows it again.
	if err := fl.Parse(args); err != nil {
		return o, parseError(fl, err, stderr)
	}
	o.dir = fl.Arg(0)
	if fl.NArg() > 1 {
		if err := fl.Parse(fl.Args()[1:]); err != nil {
			return o, parseError(fl, err, stderr)
		}
		if fl.NArg() > 0 {
			return o, fmt.Errorf("unexpected argument %q: give one directory", fl.Arg(0))
		}
	}
	if o.dir == "" {
		return o, errors.New("no directory: give the directory to write, such as ./orders")
	}
	if err := o.spec.check(); err != nil {
		return o, err
	}
	var err error
	if o.spec.Replace, err = checkoutDir(replace); err != nil {
		return o, err
	}
	o.spec.Version = frameworkVersion()
	if o.spec.Version == "" && o.spec.Replace == "" {
		return o, errors.New("-replace DIR is needed: this build of new has no released version of " + frameworkModule + " to require (point -replace at the checkout, -replace . from its root)")
	}
	return o, nil
}

// parseError prints the usage for -h, which is no error; any other parse
// error is returned as it is, one line naming the flag.
func parseError(fl *flag.FlagSet, err error, stderr io.Writer) error {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "usage: new -module PATH [-resource NAME] [-postgres] [-front-door] [-replace DIR] [-force] DIR")
		fl.SetOutput(stderr)
		fl.PrintDefaults()
	}
	return err
}

// resourceName is what a resource may be called: it names a file, a
// table, a route and Go identifiers, so only lowercase letters and digits.
var resourceName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)

// reservedResources would write over a file of the service's own.
var reservedResources = []string{"main", "setup", "roles"}

func (s *spec) check() error {
	if s.Module == "" {
		return errors.New("-module is required: the new service's module path, such as example.com/orders")
	}
	if err := module.CheckPath(s.Module); err != nil {
		return fmt.Errorf("-module %q: %v", s.Module, unwrapModuleError(err))
	}
	if !resourceName.MatchString(s.Resource) {
		return fmt.Errorf("-resource %q: want a name of lowercase letters and digits that starts with a letter, such as orders", s.Resource)
	}
	if slices.Contains(reservedResources, s.Resource) {
		return fmt.Errorf("-resource %q: the service has a file of that name; choose another", s.Resource)
	}
	return nil
}

// unwrapModuleError drops the path that module.CheckPath repeats, since
// the message already names it.
func unwrapModuleError(err error) error {
	var invalid *module.InvalidPathError
	if errors.As(err, &invalid) {
		return invalid.Err
	}
	return err
}

// checkoutDir returns dir as an absolute path after checking that it holds
// the framework's module, or "" for no dir.
func checkoutDir(dir string) (string, error) {
	if dir == "" {
		return "", nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("-replace %q: %v", dir, err)
	}
	gomod, err := os.ReadFile(filepath.Join(abs, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("-replace %q: no go.mod there: want a checkout of %s", dir, frameworkModule)
	}
	if got := modfile.ModulePath(gomod); got != frameworkModule {
		return "", fmt.Errorf("-replace %q: its go.mod is module %q, want %s", dir, got, frameworkModule)
	}
	return abs, nil
}

// frameworkVersion is the released version of the framework this command
// was built from (as `go run ...@latest` builds it), or "" for a build
// from a checkout, which has none to require.
func frameworkVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Path != frameworkModule {
		return ""
	}
	v := info.Main.Version
	if !semver.IsValid(v) || strings.HasSuffix(v, "+dirty") {
		return ""
	}
	return v
}

// serviceName is the last element of a module path, without a major
// version suffix, as a DNS label: it names the binary, the SQLite file,
// the PostgreSQL database and the Kubernetes namespace.
func serviceName(modulePath string) string {
	prefix, _, _ := module.SplitPathVersion(modulePath)
	var b strings.Builder
	for _, r := range strings.ToLower(path.Base(prefix)) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteRune('-')
		}
	}
	if name := strings.Trim(b.String(), "-"); name != "" {
		return name
	}
	return "service"
}
