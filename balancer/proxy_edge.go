package balancer

import (
	"net/http"
	"time"

	"github.com/threetier/threetier/internal/accesslog"
	"github.com/threetier/threetier/internal/httpedge"
	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

// proxyMetricsSubsystem names the front door's request metrics:
// threetier_proxy_requests_total and the rest of obs.HTTPMetrics.
const proxyMetricsSubsystem = "proxy"

// answer is the client's response writer as the proxy writes to it: it
// notes the final status and the body bytes sent, for the metrics and for
// knowing whether a panic can still be answered with a problem.
type answer struct {
	http.ResponseWriter
	status int // the final status once sent; 0 before
	bytes  int64
}

func (a *answer) WriteHeader(code int) {
	if a.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *answer) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := a.ResponseWriter.Write(b)
	a.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush, Hijack and full duplex
// beneath.
func (a *answer) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// recoverPanic answers a panic while serving r, logged by httpedge.Recovered
// (which lets http.ErrAbortHandler, a response cut off on purpose, go on
// up untouched): with a 500 problem if the client has had no answer yet,
// else by aborting the connection as net/http does, since the answer
// under way cannot be finished.
func (px *Proxy) recoverPanic(ex *exchange, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	err := httpedge.Recovered(px.log, r, v)
	ex.finish()
	if ex.resp.status != 0 {
		panic(http.ErrAbortHandler)
	}
	clear(ex.resp.Header()) // the upstream's headers, if it got that far, are not this answer's
	serveProblem(&ex.resp, r, ex.id[0], tier.ProblemOf(err))
}

// observe ends the request in the shared request metrics and the access
// log, under its pool's name ("unmatched" when no route took it).
func (px *Proxy) observe(ex *exchange, r *http.Request, rt *route, start time.Time) {
	px.metrics.End()
	elapsed := time.Since(start)
	status := ex.resp.status
	if status == 0 {
		status = httpx.StatusClientClosedRequest
	}
	var pool string
	if rt != nil {
		pool = rt.pool.Name()
	}
	px.metrics.Observe(r.Method, pool, status, elapsed, ex.resp.bytes)
	if px.access != nil {
		// The line carries the ID this hop forwarded, from the context.
		ctx := httpx.WithRequestID(r.Context(), ex.id[0])
		px.access.Log(&accesslog.Entry{Request: r.WithContext(ctx), Pool: pool, Status: status, Bytes: ex.resp.bytes, Duration: elapsed})
	}
}

// proxyAccessFields are the fields of the front door's access lines: it
// has no routes of its own, but a host and a pool.
const proxyAccessFields = tier.AccessRemote | tier.AccessMethod | tier.AccessHost | tier.AccessURI |
	tier.AccessProto | tier.AccessPool | tier.AccessStatus | tier.AccessBytes | tier.AccessDuration
