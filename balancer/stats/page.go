package stats

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/threetier/threetier/balancer/cluster"
)

//go:embed stats.html
var statsHTML string

// pageRenderer renders the stats page from a Report. The page needs
// nothing but itself: styles and the refresh script are inline, allowed by
// a per-response nonce, and everything else is refused by its
// Content-Security-Policy.
type pageRenderer struct {
	tmpl *template.Template
}

func newPageRenderer() (*pageRenderer, error) {
	t, err := template.New("stats").Funcs(template.FuncMap{
		"weight":   func(w float64) string { return strconv.FormatFloat(w, 'f', -1, 64) },
		"latency":  formatLatency,
		"percent":  func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
		"clock":    func(t time.Time) string { return t.UTC().Format("15:04:05") },
		"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"duration": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
		"ms":       func(d time.Duration) int64 { return d.Milliseconds() },
		// A meta refresh takes whole seconds.
		"seconds":   func(d time.Duration) int64 { return max(1, int64((d+time.Second-1)/time.Second)) },
		"sparkline": newSparkline,
		"request":   buttonRequest,
	}).Parse(statsHTML)
	if err != nil {
		return nil, fmt.Errorf("stats page template: %w", err)
	}
	return &pageRenderer{tmpl: t}, nil
}

// pageData is the template's view of a Report: rows joined with what each
// peer sees of them.
type pageData struct {
	Report
	Refresh time.Duration
	Nonce   string
	// Peers are the other nodes that reported on endpoints, in name order:
	// one column each.
	Peers []string
	Rows  []pagePool
	// Span is how far back the sparklines go.
	Span time.Duration
	// API documents the runtime actions.
	API []apiAction
}

type pagePool struct {
	PoolReport
	Endpoints []pageEndpoint
}

type pageEndpoint struct {
	EndpointReport
	// Peers holds one cell per pageData.Peers, in the same order; a zero
	// cell is a peer that said nothing about the endpoint.
	Peers []cluster.PeerView
}

func (s *Stats) pageData(nonce string) pageData {
	r := s.Report()
	d := pageData{Report: r, Refresh: s.cfg.Refresh, Nonce: nonce, Span: historySamples * s.cfg.SampleInterval, API: apiActions()}
	self := map[string]bool{r.Node: true}
	for _, m := range r.Members {
		if m.Self {
			self[m.Name] = true
		}
	}
	type key struct{ node, pool, endpoint string }
	seen := make(map[key]cluster.PeerView, len(r.PeerViews))
	for _, v := range r.PeerViews {
		if self[v.Node] {
			continue // this node's own view is the row itself
		}
		if !slices.Contains(d.Peers, v.Node) {
			d.Peers = append(d.Peers, v.Node)
		}
		seen[key{v.Node, v.Pool, v.Endpoint}] = v
	}
	slices.Sort(d.Peers)
	for _, st := range r.Pools {
		pp := pagePool{PoolReport: st}
		for _, e := range st.Endpoints {
			pe := pageEndpoint{EndpointReport: e, Peers: make([]cluster.PeerView, len(d.Peers))}
			for i, node := range d.Peers {
				pe.Peers[i] = seen[key{node, st.Pool, e.URL}]
				pe.Peers[i].Node = node
			}
			pp.Endpoints = append(pp.Endpoints, pe)
		}
		d.Rows = append(d.Rows, pp)
	}
	return d
}

// apiAction is one runtime action as the page documents it: what the
// page's buttons send.
type apiAction struct {
	Name, Method, Path, Body, Does string
}

func apiActions() []apiAction {
	const endpoints = "api/pools/{pool}/endpoints/"
	return []apiAction{
		{"drain", "POST", endpoints + "drain", `{"url": "http://10.0.0.7:8080"}`, "takes no new request; answers once those in flight are done (202 if they outlast the drain timeout)"},
		{"undrain", "POST", endpoints + "undrain", `{"url": "http://10.0.0.7:8080"}`, "takes requests again"},
		{"weight", "POST", endpoints + "weight", `{"url": "http://10.0.0.7:8080", "weight": 3}`, "sets the weight, 1 to 1000"},
		{"add", "POST", endpoints + "add", `{"url": "http://10.0.0.9:8080", "weight": 1, "backup": false}`, `adds an endpoint; "weight" and "backup" may be left out`},
		{"remove", "POST", endpoints + "remove", `{"url": "http://10.0.0.7:8080"}`, "drains, then removes"},
		{"block", "POST", "api/blocks/block", `{"key": "203.0.113.7", "for": "10m"}`, `blocks a client on every node; without "for", until unblocked`},
		{"unblock", "POST", "api/blocks/unblock", `{"key": "203.0.113.7"}`, "lifts a block on every node"},
		{"blocks", "GET", "api/blocks", "", "lists the blocks"},
	}
}

// buttonRequest is the request a button sends, for its tooltip.
func buttonRequest(action, pool, endpoint string) string {
	b, _ := json.Marshal(map[string]string{"url": endpoint})
	return "POST api/pools/" + url.PathEscape(pool) + "/endpoints/" + action + " " + string(b)
}

// sparkline is an endpoint's History drawn as two SVG polylines in a
// sparkWidth×sparkHeight box, each scaled to its own highest sample.
type sparkline struct {
	Requests, Latency string // the polylines' points
	Label             string // the figures, for a tooltip and screen readers
}

const sparkWidth, sparkHeight = 100, 24

func newSparkline(h History) *sparkline {
	if len(h.RequestsPerSecond) == 0 {
		return nil
	}
	lat := make([]float64, len(h.Latency))
	for i, d := range h.Latency {
		lat[i] = float64(d)
	}
	rps, rpsMax := points(h.RequestsPerSecond)
	latPoints, latMax := points(lat)
	n := len(h.RequestsPerSecond)
	return &sparkline{
		Requests: rps,
		Latency:  latPoints,
		Label: fmt.Sprintf("last %s: %s requests/s now, %s at most; latency %s now, %s at most",
			(time.Duration(n) * h.Interval).String(),
			strconv.FormatFloat(h.RequestsPerSecond[n-1], 'f', 1, 64), strconv.FormatFloat(rpsMax, 'f', 1, 64),
			formatLatency(h.Latency[n-1]), formatLatency(time.Duration(latMax))),
	}
}

// points lays samples out right-aligned on historySamples slots, the
// newest at the right edge, and scales them to their highest; it returns
// the SVG points and that highest sample.
func points(samples []float64) (string, float64) {
	top := slices.Max(samples)
	var b []byte
	for i, v := range samples {
		x := float64(historySamples-len(samples)+i) * sparkWidth / (historySamples - 1)
		y := float64(sparkHeight - 1)
		if top > 0 {
			y -= v / top * (sparkHeight - 2)
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendFloat(b, x, 'f', 1, 64)
		b = append(b, ',')
		b = strconv.AppendFloat(b, y, 'f', 1, 64)
	}
	return string(b), top
}

func (s *Stats) servePage(w http.ResponseWriter, r *http.Request) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	nonce := base64.RawStdEncoding.EncodeToString(raw[:])
	var buf bytes.Buffer
	// Rendered whole before the first byte goes out, so that a template
	// error is a clean 500 rather than half a page.
	if err := s.page.tmpl.Execute(&buf, s.pageData(nonce)); err != nil {
		s.log.ErrorContext(r.Context(), "stats page", "error", err)
		s.problem(w, r, http.StatusInternalServerError, "the stats page could not be rendered")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "+
		"style-src 'nonce-"+nonce+"'; script-src 'nonce-"+nonce+"'")
	_, _ = w.Write(buf.Bytes())
}

// formatLatency shows an EWMA the way people read latencies: "0.42 ms",
// "12 ms", "1.3 s"; "-" before the first sample.
func formatLatency(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
}
