package app

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/threetier/threetier/balancer"
)

func TestClientSendsTheSpanAsTraceparent(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
	}))
	t.Cleanup(srv.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	// An untraced pool: the Client alone carries the caller's span.
	pool, err := balancer.New(balancer.Config{Name: "users", Endpoints: []string{srv.URL}}, balancer.WithTransport(tr), balancer.WithRegistry(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	guard, err := NewGuards().Add("users", DefaultGuardConfig())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "handler")
	defer span.End()
	if err := NewClient(pool, guard).JSON(ctx, http.MethodGet, "/users/1", nil, nil); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; <-got != want {
		t.Errorf("traceparent is not the caller's span %s", want)
	}
}

func TestGuardSpanOutcome(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	guard, err := NewGuards(WithTracerProvider(tp)).Add("users", DefaultGuardConfig())
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_ = guard.run(context.Background(), false, func(context.Context) error { return nil }, nil)
	_ = guard.run(context.Background(), false, func(context.Context) error { return boom }, nil)
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for i, want := range []string{"success", "failure"} {
		s := spans[i]
		if s.Name != "guard users" {
			t.Errorf("span %q", s.Name)
		}
		for _, kv := range s.Attributes {
			if kv.Key == "threetier.guard.outcome" && kv.Value.AsString() != want {
				t.Errorf("outcome %s, want %s", kv.Value.AsString(), want)
			}
		}
	}
}
