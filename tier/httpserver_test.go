package tier_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/threetier/threetier/internal/wait"
	"github.com/threetier/threetier/tier"
)

func TestHTTPServerDrainsInFlightRequests(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(map[bool]string{false: "net-http", true: "fasthttp"}[fast], func(t *testing.T) { testHTTPServerDrainsInFlightRequests(t, fast) })
	}
}

func testHTTPServerDrainsInFlightRequests(t *testing.T, fast bool) {
	entered, release := make(chan struct{}), make(chan struct{})
	var opts []tier.ServerOption
	if fast {
		opts = append(opts, tier.WithFastHTTP1(func(ctx *fasthttp.RequestCtx) {
			close(entered)
			<-release
			ctx.SetBodyString("finished")
		}))
	}
	srv := tier.NewHTTPServer("web", &http.Server{
		Addr: "127.0.0.1:0",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			_, _ = io.WriteString(w, "finished")
		}),
	}, opts...)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(srv.Addr(), ":0") {
		t.Fatalf("Addr() = %s, want the bound port", srv.Addr())
	}
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + srv.Addr() + "/")
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(context.Background()) }()

	// New connections are refused while the in-flight request drains.
	wait.For(t, 10*time.Second, "new connections to be refused", func() bool {
		c, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if got := <-body; got != "finished" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop = %v", err)
	}
}

func TestHTTPServerStartFailsOnTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := tier.NewHTTPServer("web", &http.Server{Addr: ln.Addr().String(), Handler: http.NotFoundHandler()})
	err = tier.Run(context.Background(), srv)
	var te *tier.Error
	if !errors.As(err, &te) || te.Tier != "web" || te.Phase != "start" {
		t.Fatalf("Run = %v, want a start error for web", err)
	}
}

func TestHTTPServerStopTimeoutClosesStuckRequests(t *testing.T) {
	entered := make(chan struct{})
	srv := tier.NewHTTPServer("app", &http.Server{
		Addr: "127.0.0.1:0",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-r.Context().Done() // stuck until the connection is closed
		}),
	})
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get("http://" + srv.Addr() + "/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want deadline exceeded", err)
	}
	<-done
}
