package tier_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/threetier/threetier/tier"
)

// A service composes its tiers with Run: they start in order and stop in
// reverse when the context ends. A main uses tier.SignalContext for ctx.
func ExampleRun() {
	api := tier.NewHTTPServer("app", &http.Server{
		Addr: "127.0.0.1:0",
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello from the app tier")
		}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	runner := tier.Runner{Started: func() { close(ready) }}
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx, api) }()

	// Once every tier is ready, call the app, then shut down.
	<-ready
	if resp, err := http.Get("http://" + api.Addr() + "/"); err != nil {
		fmt.Println(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}

	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// hello from the app tier
	// run: <nil>
}

// Readiness aggregates named checkers; /readyz answers 503 with the reason
// while one fails.
func ExampleHealth() {
	var h tier.Health
	h.Register("database", tier.CheckFunc(func(ctx context.Context) error {
		return errors.New("connection refused")
	}))
	report := h.Check(context.Background())
	fmt.Println(report.Ready, report.Failed(), report.Checks[0].Error)
	// Output: false [database] connection refused
}

// The metrics go on an admin listener on loopback, beside the probes,
// never on the public one: a scrape is an operator's business.
func ExampleNewAdmin() {
	reg := tier.NewRegistry()
	var h tier.Health
	admin, err := tier.NewAdmin(tier.AdminConfig{Listen: "127.0.0.1:0"}, reg, &h, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := admin.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer admin.Stop(context.Background())
	resp, err := http.Get("http://" + admin.Addr() + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type") != "")
	// Output: 200 true
}

// Each tier reads its Config from variables with its own prefix.
func ExampleLoadEnvFrom() {
	cfg := struct {
		Addr string        `env:"ADDR" envDefault:"127.0.0.1:8080"`
		Idle time.Duration `env:"IDLE_TIMEOUT" envDefault:"60s"`
	}{}
	err := tier.LoadEnvFrom([]string{"THREETIER_WEB_IDLE_TIMEOUT=forever"}, "THREETIER_WEB_", &cfg)
	fmt.Println(err)
	// Output: THREETIER_WEB_IDLE_TIMEOUT="forever": cannot parse as time.Duration: unable to parse duration: time: invalid duration "forever"
}
