// Command new writes a new threetier service into a directory: a module
// with the data, app and web tiers wired as in examples/hello, one
// resource with its migrations, handlers and tests, an embedded page, a
// README, CI, a Dockerfile and Kubernetes manifests.
//
//	go run ./examples/new -replace . -module example.com/orders -resource orders ../orders
//	go run ./examples/new -replace . -module example.com/orders -resource orders -postgres -front-door ../orders
//
// From a checkout, -replace has the service build against it. Once a
// version of the framework is tagged, it also runs without one, requiring
// that version:
//
//	go run github.com/threetier/threetier/examples/new@latest -module example.com/orders ./orders
//
// It never overwrites a file unless -force is given.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run writes the service the arguments describe and returns the exit
// code: 0 once written, 2 for a bad command line, 1 when writing failed.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseOptions(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "new:", err)
		return 2
	}
	files, err := render(opts.spec)
	if err != nil {
		fmt.Fprintln(stderr, "new:", err)
		return 1
	}
	if err := write(opts.dir, files, opts.force); err != nil {
		fmt.Fprintln(stderr, "new:", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s (module %s, %d files); next:\n\n\tcd %s && go mod tidy && go run .\n\n", opts.dir, opts.spec.Module, len(files), opts.dir)
	return 0
}
