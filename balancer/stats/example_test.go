package stats_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/stats"
)

// A stats page over a pool: run it as a tier of its own (Start binds
// Config.Listen, 127.0.0.1:8404 by default), or mount it on an admin
// listener as here. With a token, an operator drains an endpoint with
//
//	curl -H "Authorization: Bearer $TOKEN" -d '{"url": "http://10.0.0.7:8080"}' \
//	    http://127.0.0.1:8404/api/pools/app/endpoints/drain
func ExampleNew() {
	app1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app1.Close()
	pool, err := balancer.New(balancer.Config{Name: "app", Endpoints: []string{app1.URL}})
	if err != nil {
		fmt.Println(err)
		return
	}
	page, err := stats.New(stats.Config{Name: "lb-1", Token: "change-me"}, []*balancer.Pool{pool})
	if err != nil {
		fmt.Println(err)
		return
	}

	drain := httptest.NewRequest("POST", "/api/pools/app/endpoints/drain", strings.NewReader(fmt.Sprintf(`{"url": %q}`, app1.URL)))
	drain.Header.Set("Authorization", "Bearer change-me")
	page.ServeHTTP(httptest.NewRecorder(), drain)

	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest("GET", "/api/status", nil))
	var report stats.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &report); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(report.Node, report.Pools[0].Pool, report.Pools[0].Endpoints[0].State)
	// Output: lb-1 app draining
}
