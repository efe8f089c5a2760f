// Command jsonbackend is the upstream of examples/bench/lb.sh: plain
// net/http answering every path with the same 72-byte JSON body, so that
// what a benchmark through a front door measures is the front door.
//
//	go run ./examples/bench/jsonbackend -port 19001
//
// It prints "listening on ADDR" once it serves and stops on SIGINT or
// SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/threetier/threetier/tier"
)

// body is what every request gets: 72 bytes, the size of a small API
// answer.
const body = `{"id":7,"name":"seven","price_cents":1999,"tags":["a","b"],"stock":true}`

func main() {
	ctx, stop := tier.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "jsonbackend:", err)
		os.Exit(2)
	}
}

func handler() http.Handler {
	b := []byte(body)
	length := []string{strconv.Itoa(len(b))}
	ctype := []string{"application/json"}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = ctype
		h["Content-Length"] = length
		_, _ = w.Write(b)
	})
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("jsonbackend", flag.ContinueOnError)
	port := fl.Int("port", 0, "port to serve on, on 127.0.0.1 (0: any free one)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("-port %d: want 0 to 65535", *port)
	}
	srv := tier.NewHTTPServer("jsonbackend", &http.Server{
		Addr:              net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)),
		Handler:           handler(),
		ReadHeaderTimeout: 5 * time.Second,
	})
	runner := tier.Runner{StopTimeout: 5 * time.Second, Started: func() {
		fmt.Fprintln(stdout, "listening on", srv.Addr())
	}}
	return runner.Run(ctx, srv)
}
