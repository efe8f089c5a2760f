package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/cluster"
)

// Two front doors over the same upstream share what they learn: an
// endpoint that node a ejects after its requests fail is avoided by node b
// as well, within milliseconds.
func ExampleNew() {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) }))
	defer broken.Close()
	fine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer fine.Close()

	// Both nodes name the pool "app": that is what they share.
	cfg := balancer.Config{
		Name:      "app",
		Endpoints: []string{broken.URL, fine.URL},
		Outlier:   balancer.OutlierConfig{ConsecutiveFailures: 2},
		Retry:     balancer.RetryConfig{Attempts: 1},
	}
	poolA, _ := balancer.New(cfg)
	poolB, _ := balancer.New(cfg)
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // head -c 32 /dev/urandom | base64

	ctx := context.Background()
	a, err := cluster.New(cluster.Config{Name: "a", Listen: "127.0.0.1:0", Key: key}, []*balancer.Pool{poolA})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := a.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer a.Stop(ctx)
	b, _ := cluster.New(cluster.Config{Name: "b", Listen: "127.0.0.1:0", Key: key, Peers: []string{a.LocalAddr()}}, []*balancer.Pool{poolB})
	if err := b.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer b.Stop(ctx)

	for range 4 { // two of them fail on the broken endpoint: a ejects it
		if resp, err := poolA.Client().Get("http://app/"); err == nil {
			resp.Body.Close()
		}
	}
	stateOnB := func() balancer.State {
		for _, s := range poolB.Snapshot() {
			if s.URL == broken.URL {
				return s.State
			}
		}
		return ""
	}
	deadline := time.Now().Add(2 * time.Second)
	for stateOnB() != balancer.StateEjected && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("on b:", stateOnB())
	for _, m := range b.Members() {
		fmt.Println(m.Name, m.State)
	}
	// Output:
	// on b: ejected
	// a alive
	// b alive
}
