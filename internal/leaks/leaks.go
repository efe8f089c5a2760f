// Package leaks names the goroutines that outlive a test by design, for
// the goleak check of every test binary that runs a fast-engine server.
package leaks

import "go.uber.org/goleak"

// FastHTTP are goleak's options for fasthttp's own goroutines: the clock
// of its Date header lives as long as the process, and a stopped server's
// idle-worker sweeper ends only at its next round.
func FastHTTP() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	}
}
