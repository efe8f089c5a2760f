package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/internal/tracing"
	"github.com/threetier/threetier/tier"
)

// DefaultMaxResponseBytes bounds the body a Client reads from a service.
const DefaultMaxResponseBytes = 8 << 20

// ErrResponseTooLarge: a service answered with a body larger than the
// client accepts.
var ErrResponseTooLarge = errors.New("response body too large")

// Client calls another service over HTTP. Its balancer Pool spreads the
// requests over the service's instances (health checks, ejection of the
// failing ones, retries on another instance), and its Guard makes the
// service as a whole one dependency: the breaker opens when the service
// keeps failing, the bulkhead caps the calls in flight, the timeout bounds
// every exchange, body included. The pool does the retrying, so the guard
// never retries on top of it.
//
// A Client reads each answer whole (up to its limit) before returning, so
// the response outlives the call's context; it is meant for API calls, not
// for streaming. Run the pool as a tier (tier.Run) so that its health
// checks and discovery run; the Client works without that too.
type Client struct {
	pool    *balancer.Pool
	guard   *Guard
	http    *http.Client
	maxBody int64
	prop    propagation.TextMapPropagator
}

// NewClient returns a client for the service behind pool, guarded by
// guard. Request URLs may name the service by any host; the pool picks the
// instance.
func NewClient(pool *balancer.Pool, guard *Guard) *Client {
	return &Client{
		pool:    pool,
		guard:   guard,
		http:    pool.Client(),
		maxBody: DefaultMaxResponseBytes,
		prop:    tracing.Propagator(),
	}
}

// Pool returns the client's pool.
func (c *Client) Pool() *balancer.Pool { return c.pool }

// Guard returns the client's guard.
func (c *Client) Guard() *Guard { return c.guard }

// Do sends req through the guard and the pool. Like http.Client.Do it
// returns the service's answer whatever its status, but a 5xx answer (or
// no answer) counts against the service. A refused call returns a
// *GuardError and no response. The request ID in req's context travels
// with the request, and so does its span, as traceparent.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	sent := false
	// The pool retries what can be retried: the guard makes one attempt,
	// whatever the method of the request being served.
	once := Call[*http.Response]{Guard: c.guard, NotIdempotent: true}
	resp, err := once.Do(req.Context(), func(ctx context.Context) (*http.Response, error) {
		sent = true
		resp, err := c.http.Do(c.outgoing(ctx, req))
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the answer of %s: %w", c.pool.Name(), err)
		}
		if int64(len(body)) > c.maxBody {
			return nil, fmt.Errorf("%s: %w (more than %d bytes)", c.pool.Name(), ErrResponseTooLarge, c.maxBody)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		if resp.StatusCode >= 500 {
			return resp, &StatusError{Service: c.pool.Name(), Status: resp.StatusCode}
		}
		return resp, nil
	})
	if _, ok := err.(*StatusError); ok && resp != nil {
		return resp, nil // counted against the service; the caller gets the answer
	}
	if err != nil {
		if !sent && req.Body != nil {
			_ = req.Body.Close() // refused: the body is closed as http.Client.Do would
		}
		return nil, err
	}
	return resp, nil
}

// JSON sends in (when not nil) as a JSON body to path (with its query,
// starting with "/") and decodes the answer into out (when not nil). An
// answer that is not 2xx becomes a *StatusError carrying the service's
// problem, if it sent one. The Host header is the instance's address, as
// in a direct call.
func (c *Client) JSON(ctx context.Context, method, path string, in, out any) error {
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("calling %s: path %q must start with /", c.pool.Name(), path)
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request to %s: %w", c.pool.Name(), err)
		}
		body = bytes.NewReader(b)
	}
	// The pool puts in the instance's scheme and host.
	req, err := http.NewRequestWithContext(ctx, method, "http://upstream"+path, body)
	if err != nil {
		return err
	}
	req.Host = ""
	req.Header.Set("Accept", "application/json, "+tier.ContentTypeProblem)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &StatusError{Service: c.pool.Name(), Status: resp.StatusCode}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == tier.ContentTypeProblem {
			var p tier.Problem
			if json.NewDecoder(resp.Body).Decode(&p) == nil {
				se.Problem = &p
			}
		}
		return se
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the answer of %s: %w", c.pool.Name(), err)
	}
	return nil
}

// StatusError is an answer from another service that was not a success.
// It leaves the tier as 502 Bad Gateway: the service's own problem is for
// the log, not for this tier's clients.
type StatusError struct {
	Service string
	Status  int
	// Problem is the service's problem+json, when it sent one.
	Problem *tier.Problem
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s answered %d %s", e.Service, e.Status, http.StatusText(e.Status))
	if e.Problem != nil && e.Problem.Detail != "" {
		msg += ": " + e.Problem.Detail
	}
	return msg
}

// outgoing is req with the attempt's context and, when that context
// carries a span, its traceparent and baggage; req itself is left as the
// caller made it.
func (c *Client) outgoing(ctx context.Context, req *http.Request) *http.Request {
	out := req.WithContext(ctx)
	if trace.SpanContextFromContext(ctx).IsValid() {
		out.Header = req.Header.Clone()
		if out.Header == nil {
			out.Header = make(http.Header, 2)
		}
		c.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	}
	return out
}
