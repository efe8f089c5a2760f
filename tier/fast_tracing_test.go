package tier_test

import (
	"bufio"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/tier"
)

// tracedRequest serves one GET on a traced server, on the fast engine or
// on net/http, and returns the server span it made and the span context
// its handler saw.
func tracedRequest(t *testing.T, fast bool, traceparent string) (sdktrace.ReadOnlySpan, trace.SpanContext) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	inHandler := make(chan trace.SpanContext, 1)
	hs := &http.Server{Addr: "127.0.0.1:0", ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inHandler <- trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusCreated)
	})}
	opts := []tier.ServerOption{tier.WithTracerProvider(tp)}
	if fast {
		opts = append(opts, tier.WithFastHTTP1(func(ctx *fasthttp.RequestCtx) {
			inHandler <- trace.SpanContextFromContext(tier.FastContext(ctx))
			ctx.SetStatusCode(http.StatusCreated)
		}))
	}
	srv := tier.NewHTTPServer("traced", hs, opts...)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	req, err := http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/items?q=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Traceparent", traceparent)
	req.Header.Set("User-Agent", "tracing-test")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	seen := <-inHandler
	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	return ended[0], seen
}

// A request on the fast engine gets the server span net/http's get: the
// same name and attributes, a child of the traceparent it came with, and
// FastContext carries it to the handler.
func TestFastTracingSpan(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const traceparent = "00-" + traceID + "-00f067aa0ba902b7-01"
	want, _ := tracedRequest(t, false, traceparent)
	got, inHandler := tracedRequest(t, true, traceparent)
	if got.Name() != want.Name() || got.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q (%v), want %q, a server span", got.Name(), got.SpanKind(), want.Name())
	}
	if got.Parent().TraceID().String() != traceID || !got.Parent().IsRemote() {
		t.Errorf("parent %v, want the traceparent's", got.Parent())
	}
	if inHandler.SpanID() != got.SpanContext().SpanID() {
		t.Errorf("FastContext's span %v, want the server span %v", inHandler.SpanID(), got.SpanContext().SpanID())
	}
	wantAttrs, gotAttrs := attrMap(want.Attributes()), attrMap(got.Attributes())
	// Ports and peer addresses differ between the two connections.
	varying := map[attribute.Key]bool{"server.port": true, "client.port": true, "network.peer.port": true}
	for k, v := range wantAttrs {
		g, ok := gotAttrs[k]
		if !ok {
			t.Errorf("attribute %s missing (net/http's is %s)", k, v.String())
		} else if !varying[k] && g != v {
			t.Errorf("attribute %s = %s, net/http's is %s", k, g.String(), v.String())
		}
	}
	for k, v := range gotAttrs {
		if _, ok := wantAttrs[k]; !ok {
			t.Errorf("attribute %s = %s, which net/http's span has not", k, v.String())
		}
	}
	if got.Status() != want.Status() {
		t.Errorf("status %v, want %v", got.Status(), want.Status())
	}
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// A span's attributes are its request's, after the connection's next
// request has reused fasthttp's buffers.
func TestFastTracingSpanOutlivesItsRequest(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := &engines{}
	_, dial, _ := startFast(t, e, false, nil, tier.WithTracerProvider(tp))
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	exchangeOn(t, c, br, "GET /first/path HTTP/1.1\r\nHost: a\r\nUser-Agent: first-agent\r\n\r\n")
	exchangeOn(t, c, br, "GET /2nd/other HTTP/1.1\r\nHost: a\r\nUser-Agent: other-agent\r\n\r\n")
	ended := rec.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans, want 2", len(ended))
	}
	attrs := attrMap(ended[0].Attributes())
	if p, ua := attrs["url.path"].AsString(), attrs["user_agent.original"].AsString(); p != "/first/path" || ua != "first-agent" {
		t.Fatalf("the first span says url.path %q, user_agent.original %q", p, ua)
	}
}
