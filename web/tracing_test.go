package web_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/app"
	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/data"
	"github.com/threetier/threetier/internal/syncbuf"
	"github.com/threetier/threetier/tier"
	"github.com/threetier/threetier/web"
)

type item struct {
	ID   uint `gorm:"primaryKey"`
	Name string
}

// stack is web → pool → app → data in one process, each tier traced by tp
// when it is not nil.
type stack struct {
	url  string
	logs *syncbuf.Buffer
	// traceparent is what the app tier's handler received.
	traceparent chan string
}

func startStack(t *testing.T, tp trace.TracerProvider) *stack {
	t.Helper()
	ctx := context.Background()
	st := &stack{logs: &syncbuf.Buffer{}, traceparent: make(chan string, 1)}
	log, err := tier.NewLogger(tier.LogConfig{Format: "json", Level: "debug"}, st.logs)
	if err != nil {
		t.Fatal(err)
	}
	db, err := data.Open(ctx, data.Config{Path: filepath.Join(t.TempDir(), "trace.db")}, data.WithLogger(log), data.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.AutoMigrate(ctx, &item{}); err != nil {
		t.Fatal(err)
	}

	api, err := app.New(app.Config{Listen: "127.0.0.1:0"}, app.WithLogger(log), app.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	guard, err := api.Guards().Add("db", app.DefaultGuardConfig())
	if err != nil {
		t.Fatal(err)
	}
	api.Echo().GET("/api/items", func(c echo.Context) error {
		st.traceparent <- c.Request().Header.Get("traceparent")
		items, err := app.Do(c.Request().Context(), guard, func(ctx context.Context) ([]item, error) {
			var items []item
			return items, db.WithContext(ctx).Find(&items).Error
		})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, items)
	})
	pool, err := balancer.New(balancer.Config{Name: "app"}, balancer.WithTracerProvider(tp),
		balancer.WithDiscovery(discoverFunc(func() string { return "http://" + api.Addr() })))
	if err != nil {
		t.Fatal(err)
	}
	site, err := web.New(web.Config{Listen: "127.0.0.1:0"}, web.WithForward(pool, web.ForwardConfig{Prefix: "/api/"}),
		web.WithLogger(log), web.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []tier.Tier{api, pool, site} {
		if err := tr.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tr.Stop(ctx)
		})
	}
	st.url = "http://" + site.Addr()
	return st
}

// discoverFunc finds the one endpoint its function names.
type discoverFunc func() string

func (f discoverFunc) Discover(context.Context) ([]balancer.Endpoint, error) {
	return []balancer.Endpoint{{URL: f()}}, nil
}

// get asks the stack for its items, with traceparent when not empty.
func (st *stack) get(t *testing.T, traceparent string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, st.url+"/api/items", nil)
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

func TestTraceAcrossTiers(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	st := startStack(t, tp)
	st.waitReady(t)
	exp.Reset() // the readiness requests made spans of their own

	const client = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	st.get(t, client)
	got := <-st.traceparent

	// The servers end their spans once their handlers return, which can
	// come after the client has its answer.
	want := []string{"GET /api/*", "GET", "GET /api/items", "guard db", "SELECT items"}
	var spans tracetest.SpanStubs
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if spans = exp.GetSpans(); len(spans) >= len(want) {
			break
		}
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	// Each hop is the child of the one before it, the first of the client's.
	parent := trace.SpanContext{}
	for i, name := range want {
		s, ok := byName[name]
		if !ok {
			t.Fatalf("no span %q among %v", name, names(spans))
		}
		if s.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
			t.Errorf("%q: trace %s, not the client's", name, s.SpanContext.TraceID())
		}
		switch {
		case i == 0 && s.Parent.SpanID().String() != "b7ad6b7169203331":
			t.Errorf("%q: parent %s, not the client's span", name, s.Parent.SpanID())
		case i > 0 && s.Parent.SpanID() != parent.SpanID():
			t.Errorf("%q: parent %s, want %q's %s", name, s.Parent.SpanID(), want[i-1], parent.SpanID())
		}
		parent = s.SpanContext
	}
	attempt := byName["GET"]
	if attempt.SpanKind != trace.SpanKindClient || !hasAttr(attempt, "threetier.balancer.pool", "app") {
		t.Errorf("attempt span: kind %v, attributes %v", attempt.SpanKind, attempt.Attributes)
	}
	if want := "00-0af7651916cd43dd8448eb211c80319c-" + attempt.SpanContext.SpanID().String() + "-01"; got != want {
		t.Errorf("the app tier got traceparent %q, want the attempt's %q", got, want)
	}
	if g := byName["guard db"]; !hasAttr(g, "threetier.guard.outcome", "success") {
		t.Errorf("guard span attributes %v", g.Attributes)
	}
	stmt := byName["SELECT items"]
	if !hasAttr(stmt, "db.system", "sqlite") || !hasAttr(stmt, "db.operation", "SELECT") || !hasAttr(stmt, "db.statement", "SELECT * FROM `items`") {
		t.Errorf("statement span attributes %v", stmt.Attributes)
	}

	// The access lines of the web and app tiers carry the trace.
	n := strings.Count(st.logs.String(), `"trace_id":"0af7651916cd43dd8448eb211c80319c"`)
	if n < 2 {
		t.Errorf("%d log lines carry the trace ID; logs:\n%s", n, st.logs)
	}
}

func TestNoTracingPassesTraceparent(t *testing.T) {
	st := startStack(t, nil)
	st.waitReady(t)
	const client = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	st.get(t, client)
	if got := <-st.traceparent; got != client {
		t.Errorf("the app tier got traceparent %q, want the client's %q", got, client)
	}
	if strings.Contains(st.logs.String(), "trace_id") {
		t.Errorf("log lines carry a trace ID without tracing:\n%s", st.logs)
	}
}

// waitReady waits until the pool has found the app tier.
func (st *stack) waitReady(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(st.url + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				http.DefaultClient.CloseIdleConnections()
				return
			}
		}
	}
	t.Fatal("the stack never got ready")
}

func hasAttr(s tracetest.SpanStub, key, value string) bool {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String() == value
		}
	}
	return false
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
