package stats

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/threetier/threetier/balancer/ratelimit"
)

// topClients is how many clients the stats show.
const topClients = 20

// RateLimitReport is what the stats show of a front door's limits
// (WithRateLimiter).
type RateLimitReport struct {
	// Rate and Burst are the requests per second and burst per client
	// key; ConnLimit the connections per client address (0: none).
	Rate      float64 `json:"rate"`
	Burst     int     `json:"burst"`
	ConnLimit int     `json:"conn_limit,omitempty"`
	// Policies are the routes' limits of their own, named after their
	// pools, each counted apart from Rate.
	Policies []ratelimit.Policy `json:"policies,omitempty"`
	// Keys are the client keys tracked now, of at most MaxKeys.
	Keys    int `json:"keys"`
	MaxKeys int `json:"max_keys"`
	// Limited counts the requests refused since the node started, blocked
	// ones included; ConnsRefused the connections.
	Limited      uint64 `json:"limited"`
	ConnsRefused uint64 `json:"conns_refused"`
	// Top are the busiest clients: the highest rate (requests in the
	// last whole second, or the current one so far), then the most refused.
	Top []ratelimit.Client `json:"top"`
	// Blocks are the keys blocked, here or by a peer.
	Blocks []ratelimit.Block `json:"blocks"`
}

// rateLimitReport is the limiter's part of the stats; nil without one.
func (s *Stats) rateLimitReport() *RateLimitReport {
	l := s.limiter
	if l == nil {
		return nil
	}
	now := time.Now()
	cfg := l.Config()
	return &RateLimitReport{
		Rate: cfg.Rate, Burst: cfg.Burst, ConnLimit: cfg.ConnLimit, Policies: cfg.Policies,
		Keys: l.Len(), MaxKeys: cfg.MaxKeys,
		Limited: l.Limited(), ConnsRefused: l.ConnsRefused(),
		Top:    l.Top(topClients, now),
		Blocks: l.Blocks(now),
	}
}

// blockRequest is the body of POST /api/blocks/{block,unblock}.
type blockRequest struct {
	Key string `json:"key"`
	// For is how long the block lasts ("10m", Go's duration syntax);
	// absent, until unblocked.
	For string `json:"for,omitempty"`
}

// serveBlocks lists the blocks (GET /api/blocks) or makes or lifts one
// (POST /api/blocks/block, /api/blocks/unblock), with the token; blocks
// reach the cluster's other nodes through the limiter.
func (s *Stats) serveBlocks(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	want := http.MethodPost
	if action == "" {
		want = http.MethodGet
	}
	if r.Method != want && !(want == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", want)
		s.problem(w, r, http.StatusMethodNotAllowed, "use "+want)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	if s.limiter == nil {
		s.problem(w, r, http.StatusNotFound, "no rate limits on this node: set ProxyConfig.RateLimit, ConnLimit or a route's RateLimit, and give the stats page the limiter (WithRateLimiter)")
		return
	}
	if action == "" {
		writeJSON(w, http.StatusOK, s.limiter.Blocks(time.Now()))
		return
	}
	if action != "block" && action != "unblock" {
		s.problem(w, r, http.StatusNotFound, fmt.Sprintf("no action %q: use block or unblock", action))
		return
	}
	req, err := decodeBlock(w, r)
	if err != nil {
		s.problem(w, r, http.StatusBadRequest, err.Error())
		return
	}
	var until time.Time
	if action == "block" && req.For != "" {
		d, err := time.ParseDuration(req.For)
		if err != nil || d <= 0 {
			s.problem(w, r, http.StatusUnprocessableEntity, fmt.Sprintf(`"for" %q: not a positive duration such as "10m"`, req.For))
			return
		}
		until = time.Now().Add(d)
	}
	if action == "block" {
		s.limiter.Block(req.Key, until)
	} else {
		s.limiter.Unblock(req.Key)
	}
	s.log.InfoContext(r.Context(), "runtime action", "action", action, "key", req.Key, "for", req.For,
		"remote", r.RemoteAddr, "user_agent", r.UserAgent())
	writeJSON(w, http.StatusOK, s.limiter.Blocks(time.Now()))
}

// decodeBlock reads the one JSON object of a block action's body.
func decodeBlock(w http.ResponseWriter, r *http.Request) (blockRequest, error) {
	req, err := decodeOne[blockRequest](w, r, `{"key": "203.0.113.7", "for": "10m"}`)
	if err == nil && req.Key == "" {
		err = errors.New(`the body needs the client "key"`)
	}
	return req, err
}
