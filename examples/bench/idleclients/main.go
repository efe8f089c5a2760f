// Command idleclients is the crowd of examples/bench/lb-idle.sh: it opens
// -conns keep-alive connections to -url, sends one GET on each, reads the
// answer, prints "ready N" and then holds every connection open, idle,
// until it is killed or -hold passes, so that the server's memory can be
// read with all of them open.
//
//	go run ./examples/bench/idleclients -url http://127.0.0.1:18581/ -conns 10000
//
// Each connection needs a descriptor here and one on the server: raise
// ulimit -n first. An answer other than 2xx, or a connection that cannot be
// opened, stops it with status 1.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/threetier/threetier/tier"
)

func main() {
	ctx, stop := tier.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "idleclients:", err)
		os.Exit(1)
	}
}

// dialers is how many connections are being opened at once: enough to
// open thousands in seconds, few enough not to overflow the server's
// accept queue.
const dialers = 64

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("idleclients", flag.ContinueOnError)
	target := fl.String("url", "", "http:// URL to GET once on each connection")
	conns := fl.Int("conns", 10000, "connections to open and hold")
	hold := fl.Duration("hold", 0, "how long to hold them once open (0: until killed)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only)", fl.Arg(0))
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url %q: want http://host:port/path", *target)
	}
	if *conns < 1 {
		return fmt.Errorf("-conns %d: want at least 1", *conns)
	}
	if *hold < 0 {
		return fmt.Errorf("-hold %s: want 0 or more", *hold)
	}

	open, err := openAll(ctx, u, *conns)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready", len(open))
	if *hold > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *hold)
		defer cancel()
	}
	<-ctx.Done()
	return nil
}

// openAll opens n connections to u, each having had one answer, or
// returns the error of the first that failed with those it opened.
func openAll(ctx context.Context, u *url.URL, n int) ([]net.Conn, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	request := []byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: idleclients\r\n\r\n")
	var (
		mu     sync.Mutex
		open   = make([]net.Conn, 0, n)
		next   = make(chan struct{})
		wg     sync.WaitGroup
		dialer net.Dialer
	)
	for range min(dialers, n) {
		wg.Go(func() {
			br := bufio.NewReaderSize(nil, 4096) // reused: an idle connection keeps no buffer
			for range next {
				c, err := openOne(ctx, &dialer, u.Host, request, br)
				if err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				open = append(open, c)
				mu.Unlock()
			}
		})
	}
feed:
	for range n {
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return open, err
	}
	return open, nil
}

// openOne dials addr, sends request and reads its answer whole, so that
// the connection is left idle between requests.
func openOne(ctx context.Context, dialer *net.Dialer, addr string, request []byte, br *bufio.Reader) (net.Conn, error) {
	c, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The exchange is bounded: a server that stops answering fails the run
	// instead of hanging it.
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		c.Close()
		return nil, err
	}
	err = exchange(c, request, br)
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func exchange(c net.Conn, request []byte, br *bufio.Reader) error {
	if _, err := c.Write(request); err != nil {
		return err
	}
	br.Reset(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answer %s from %s", resp.Status, c.RemoteAddr())
	}
	if resp.Close {
		return errors.New("the server closes the connection after one answer: no keep-alive")
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("%d bytes past the answer from %s", br.Buffered(), c.RemoteAddr())
	}
	return nil
}
