package stats

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/threetier/threetier/balancer"
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
		"weight":   formatEffectiveWeight,
		"latency":  formatLatency,
		"percent":  func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
		"clock":    func(t time.Time) string { return t.UTC().Format("15:04:05") },
		"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"duration": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
		"ms":       func(d time.Duration) int64 { return d.Milliseconds() },
		// A meta refresh takes whole seconds.
		"seconds": func(d time.Duration) int64 { return max(1, int64((d+time.Second-1)/time.Second)) },
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
}

type pagePool struct {
	balancer.Status
	Endpoints []pageEndpoint
}

type pageEndpoint struct {
	balancer.EndpointStatus
	// Peers holds one cell per pageData.Peers, in the same order; a zero
	// cell is a peer that said nothing about the endpoint.
	Peers []cluster.PeerView
}

func (s *Stats) pageData(nonce string) pageData {
	r := s.Report()
	d := pageData{Report: r, Refresh: s.cfg.Refresh, Nonce: nonce}
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
		pp := pagePool{Status: st}
		for _, e := range st.Endpoints {
			pe := pageEndpoint{EndpointStatus: e, Peers: make([]cluster.PeerView, len(d.Peers))}
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

// formatEffectiveWeight shows a weight in tenths (EffectiveWeight) in
// Weight units: "1", "0.5".
func formatEffectiveWeight(tenths int) string {
	if tenths%10 == 0 {
		return strconv.Itoa(tenths / 10)
	}
	return strconv.FormatFloat(float64(tenths)/10, 'f', 1, 64)
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
