package balancer

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/threetier/threetier/tier"
)

// A pool over servers of the same process finds them once they are bound
// and balances over them, without their addresses being written anywhere.
func TestLocalBalancesOverServersOfThisProcess(t *testing.T) {
	var servers []*tier.HTTPServer
	for i := range 2 {
		name := fmt.Sprintf("s%d", i)
		servers = append(servers, tier.NewHTTPServer(name, &http.Server{
			Addr:              "127.0.0.1:0",
			ReadHeaderTimeout: time.Second,
			Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }),
		}))
	}
	local := Local(servers...)
	ctx := context.Background()
	if eps, err := local.Discover(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("before the servers are bound: %v, %v; want none", eps, err)
	}
	for _, s := range servers {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop(ctx) })
	}
	eps, err := local.Discover(ctx)
	if err != nil || len(eps) != 2 || eps[0].URL != "http://"+servers[0].Addr() || eps[1].URL != "http://"+servers[1].Addr() {
		t.Fatalf("once bound: %v, %v", eps, err)
	}

	pool := newPool(t, Config{Name: "local"}, WithDiscovery(local))
	if err := pool.Start(ctx); err != nil {
		t.Fatal(err)
	}
	served := map[string]int{}
	for range 10 {
		status, body, err := get(t, pool.Client(), "http://local/")
		if err != nil || status != http.StatusOK {
			t.Fatalf("through the pool: %d, %v", status, err)
		}
		served[body]++
	}
	if len(served) != 2 {
		t.Errorf("served by %v, want both servers", served)
	}
}

// Addresses that name no port, or port 0, are not endpoints yet.
func TestLocalSkipsUnboundAddresses(t *testing.T) {
	eps, _ := Local(addr("127.0.0.1:0"), addr(""), addr("[::1]:8081"), addr(":0")).Discover(context.Background())
	if len(eps) != 1 || eps[0].URL != "http://[::1]:8081" {
		t.Errorf("endpoints %v, want only [::1]:8081", eps)
	}
}

type addr string

func (a addr) Addr() string { return string(a) }
