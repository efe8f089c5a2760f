// Command fastproxy is the engine's own limit in examples/bench/lb.sh: a
// bare reverse proxy on github.com/valyala/fasthttp (its server, one
// HostClient per backend), round robin over the backends, adding
// X-Forwarded-For and nothing else. No health checks, retries, limits,
// metrics or logs: what examples/lb costs beyond it is what its features
// cost.
//
//	go run ./examples/bench/fastproxy -listen 127.0.0.1:18583 -backends http://127.0.0.1:18591,http://127.0.0.1:18592
//
// It prints "listening on ADDR" once it serves and stops on SIGINT or
// SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/tier"
)

func main() {
	ctx, stop := tier.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fastproxy:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("fastproxy", flag.ContinueOnError)
	listen := fl.String("listen", "127.0.0.1:18583", "address to serve on")
	backends := fl.String("backends", "", "comma-separated base URLs of the backends: http://host:port,...")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only)", fl.Arg(0))
	}
	p, err := newProxy(*backends)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "listening on", ln.Addr())
	return serve(ctx, ln, p)
}

// serve runs the proxy on ln until ctx ends, then waits for the requests
// in flight.
func serve(ctx context.Context, ln net.Listener, p *proxy) error {
	srv := &fasthttp.Server{Handler: p.handle, NoDefaultServerHeader: true}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		return errors.Join(srv.Shutdown(), <-served)
	}
}

// proxy hands each request to the next backend in turn.
type proxy struct {
	backends []*fasthttp.HostClient
	next     atomic.Uint64
}

// newProxy reads "http://host:port,..." into one client per backend.
func newProxy(list string) (*proxy, error) {
	p := &proxy{}
	for raw := range strings.SplitSeq(list, ",") {
		if raw = strings.TrimSpace(raw); raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("-backends: %w", err)
		}
		if u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("-backends: %q: want http://host:port", raw)
		}
		p.backends = append(p.backends, &fasthttp.HostClient{Addr: u.Host})
	}
	if len(p.backends) == 0 {
		return nil, errors.New("no backends: give -backends http://host:port[,http://host:port]")
	}
	return p, nil
}

func (p *proxy) handle(ctx *fasthttp.RequestCtx) {
	backend := p.backends[(p.next.Add(1)-1)%uint64(len(p.backends))]
	setForwardedFor(&ctx.Request.Header, ctx.RemoteIP())
	if err := backend.Do(&ctx.Request, &ctx.Response); err != nil {
		ctx.Response.Reset()
		ctx.Error("bad gateway", fasthttp.StatusBadGateway)
	}
}

// setForwardedFor appends the client's address to X-Forwarded-For, as
// every proxy in the chain does.
func setForwardedFor(h *fasthttp.RequestHeader, client net.IP) {
	var buf [64]byte
	v := buf[:0]
	if prior := h.Peek(fasthttp.HeaderXForwardedFor); len(prior) > 0 {
		v = append(append(v, prior...), ", "...)
	}
	v, _ = client.AppendText(v)
	h.SetBytesV(fasthttp.HeaderXForwardedFor, v)
}
