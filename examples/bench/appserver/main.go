// Command appserver serves one JSON route for examples/bench/app.sh,
// either through bare Echo or through the app tier's full middleware chain
// (request ID, access log, metrics, recovery, shedding, body limit,
// request timeout), so that a load generator can compare the two over a
// real socket. -access-log=false turns the chain's access lines off, to
// tell their cost from the rest of the chain's.
//
//	go run ./examples/bench/appserver -mode app -listen 127.0.0.1:0
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
	"net/http"
	"os"
	"runtime/pprof"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/tier"
)

type item struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func main() {
	ctx, stop := tier.SignalContext(context.Background())
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "appserver:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("appserver", flag.ContinueOnError)
	mode := fl.String("mode", "app", "bare (Echo alone) or app (the app tier's chain)")
	listen := fl.String("listen", "127.0.0.1:0", "address to serve on")
	accessLog := fl.Bool("access-log", true, "log every request (app mode)")
	cpuProfile := fl.String("cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	handler := func(c echo.Context) error {
		return c.JSON(http.StatusOK, item{ID: 7, Name: "seven"})
	}

	var t tier.Tier
	var addr func() string
	switch *mode {
	case "bare":
		e := echo.New()
		e.HideBanner, e.HidePort = true, true
		e.GET("/items/:id", handler)
		srv := tier.NewHTTPServer("bare", &http.Server{Addr: *listen, Handler: e, ReadHeaderTimeout: 5 * time.Second})
		t, addr = srv, srv.Addr
	case "app":
		// A real deployment logs every request: log at info, in JSON, to a
		// sink that costs nothing, so the formatting is measured, not a disk.
		log, err := tier.NewLogger(tier.LogConfig{Level: "info", Format: "json"}, io.Discard)
		if err != nil {
			return err
		}
		access := tier.AccessLogConfig{}
		if !*accessLog {
			access.Format = tier.AccessLogOff
		}
		srv, err := app.New(app.Config{Listen: *listen}, app.WithLogger(log), app.WithRegistry(tier.NewRegistry()), app.WithAccessLog(access))
		if err != nil {
			return err
		}
		srv.Echo().GET("/items/:id", handler)
		t, addr = srv, srv.Addr
	default:
		return errors.New("-mode must be bare or app")
	}
	runner := tier.Runner{StopTimeout: 5 * time.Second, Started: func() {
		fmt.Fprintln(stdout, "listening on", addr())
	}}
	return runner.Run(ctx, t)
}
