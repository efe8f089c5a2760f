package stats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/threetier/threetier/balancer"
	"github.com/threetier/threetier/balancer/cluster"
	"github.com/threetier/threetier/balancer/internal/balancertest"
	"github.com/threetier/threetier/balancer/ratelimit"
	"github.com/threetier/threetier/internal/chromium"
)

// attr returns n's attribute named key, and whether it has one.
func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// findAll returns the elements under n for which match holds, in document
// order.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// pageRow is one endpoint row of the page: the text of its elements with a
// data-field, and its peer cells' text by peer name.
type pageRow struct {
	fields map[string]string
	peers  map[string]string
}

// pageRows reads the endpoint rows of a page by their data attributes,
// keyed by pool and endpoint URL.
func pageRows(t *testing.T, doc *html.Node) map[[2]string]pageRow {
	t.Helper()
	rows := make(map[[2]string]pageRow)
	for _, tr := range findAll(doc, func(n *html.Node) bool { _, ok := attr(n, "data-endpoint"); return n.DataAtom == atom.Tr && ok }) {
		pool, _ := attr(tr, "data-pool")
		ep, _ := attr(tr, "data-endpoint")
		r := pageRow{fields: map[string]string{}, peers: map[string]string{}}
		for _, n := range findAll(tr, func(n *html.Node) bool { _, ok := attr(n, "data-field"); return ok }) {
			if peer, ok := attr(n, "data-peer"); ok {
				r.peers[peer] = textOf(n)
			} else {
				f, _ := attr(n, "data-field")
				r.fields[f] = textOf(n)
			}
		}
		key := [2]string{pool, ep}
		if _, dup := rows[key]; dup {
			t.Fatalf("row %v twice", key)
		}
		rows[key] = r
	}
	return rows
}

// checkRowsMatch checks that every endpoint of the report has a row with
// its state, weight and request count, and that there is no other row.
func checkRowsMatch(t *testing.T, rows map[[2]string]pageRow, r Report) {
	t.Helper()
	n := 0
	for _, st := range r.Pools {
		for _, e := range st.Endpoints {
			n++
			row, ok := rows[[2]string{st.Pool, e.URL}]
			if !ok {
				t.Errorf("no row for %s %s", st.Pool, e.URL)
				continue
			}
			want := map[string]string{
				"url": e.URL, "state": string(e.State), "weight": strconv.Itoa(e.Weight),
				"requests": strconv.FormatUint(e.Requests, 10), "failures": strconv.FormatUint(e.Failures, 10),
				"in_flight": strconv.FormatInt(e.InFlight, 10), "ejections": strconv.FormatUint(uint64(e.Ejections), 10),
				"effective_weight": strconv.FormatFloat(e.EffectiveWeight, 'f', -1, 64),
			}
			for f, v := range want {
				if row.fields[f] != v {
					t.Errorf("%s %s: %s = %q on the page, %q in the JSON", st.Pool, e.URL, f, row.fields[f], v)
				}
			}
		}
	}
	if len(rows) != n {
		t.Errorf("%d rows for %d endpoints", len(rows), n)
	}
}

// checkBalanced checks that the page's elements nest properly: every
// element that is not void is closed, in order. html.Parse accepts any
// input, so this is what "valid" means here.
func checkBalanced(t *testing.T, page []byte) {
	t.Helper()
	void := map[string]bool{"meta": true, "link": true, "br": true, "hr": true, "img": true, "input": true, "col": true, "wbr": true}
	z := html.NewTokenizer(bytes.NewReader(page))
	var stack []string
	sawDoctype := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			if len(stack) != 0 {
				t.Fatalf("unclosed elements: %v", stack)
			}
			if !sawDoctype {
				t.Fatal("no doctype")
			}
			return
		case html.DoctypeToken:
			sawDoctype = true
		case html.StartTagToken:
			name, _ := z.TagName()
			if !void[string(name)] {
				stack = append(stack, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(stack) == 0 || stack[len(stack)-1] != string(name) {
				t.Fatalf("</%s> closes %v", name, stack)
			}
			stack = stack[:len(stack)-1]
		}
	}
}

func TestStatsPage(t *testing.T) {
	a, b, c := balancertest.NewBackend(t), balancertest.NewBackend(t), balancertest.NewBackend(t)
	web := balancertest.NewPool(t, balancer.Config{Name: "web", Endpoints: []string{a.URL, b.URL}})
	app := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{c.URL}, Backups: []string{a.URL}})
	empty := balancertest.NewPool(t, balancer.Config{Name: "empty", Endpoints: []string{c.URL}})
	if err := empty.Remove(context.Background(), c.URL); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, _, _ = balancertest.Get(t, web.Client(), "http://upstream/")
	}
	if err := web.Drain(context.Background(), b.URL); err != nil {
		t.Fatal(err)
	}
	ss := newStatsServer(t, Config{Name: "lb-1", Refresh: 3 * time.Second}, []*balancer.Pool{web, app, empty})

	resp, page := ss.do("GET", "/", "", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %d", resp.StatusCode)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'nonce-") || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", resp.Header)
	}
	checkBalanced(t, page)
	// Nothing to fetch: no src, no stylesheet link; a meta refresh for
	// browsers without scripts.
	if bytes.Contains(page, []byte(" src=")) || bytes.Contains(page, []byte("<link")) {
		t.Error("the page loads an external asset")
	}
	if !bytes.Contains(page, []byte(`<noscript><meta http-equiv="refresh" content="3"></noscript>`)) {
		t.Error("no fallback refresh")
	}
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	// The nonce of the inline script and style is the header's.
	for _, n := range findAll(doc, func(n *html.Node) bool { return n.DataAtom == atom.Script || n.DataAtom == atom.Style }) {
		if nonce, _ := attr(n, "nonce"); nonce == "" || !strings.Contains(csp, "'nonce-"+nonce+"'") {
			t.Errorf("<%s nonce=%q> not allowed by %q", n.Data, nonce, csp)
		}
	}
	r := ss.report()
	checkRowsMatch(t, pageRows(t, doc), r)
	if got := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "data-pool"); return n.DataAtom == atom.Section && v != "" }); len(got) != 3 {
		t.Errorf("%d pool sections", len(got))
	}
	if !strings.Contains(textOf(doc), "lb-1") || !strings.Contains(textOf(doc), "no endpoints") {
		t.Errorf("page text: %s", textOf(doc))
	}
	// Another page, another nonce.
	resp2, _ := ss.do("GET", "/", "", "", "")
	if resp2.Header.Get("Content-Security-Policy") == csp {
		t.Error("the nonce did not change")
	}
	if resp, _ := ss.do("HEAD", "/", "", "", ""); resp.StatusCode != 200 {
		t.Errorf("HEAD /: %d", resp.StatusCode)
	}
}

func TestStatsPageEscapes(t *testing.T) {
	a := balancertest.NewBackend(t)
	const hostile = `<script>alert("x")</script>" data-x='1`
	p := balancertest.NewPool(t, balancer.Config{Name: hostile, Endpoints: []string{a.URL}})
	ss := newStatsServer(t, Config{Name: "<b>node</b>"}, []*balancer.Pool{p})
	_, page := ss.do("GET", "/", "", "", "")
	if bytes.Contains(page, []byte(`<script>alert`)) || bytes.Contains(page, []byte(`<b>node`)) || bytes.Contains(page, []byte(`data-x='1`)) {
		t.Fatalf("unescaped name in the page:\n%s", page)
	}
	checkBalanced(t, page)
	doc, _ := html.Parse(bytes.NewReader(page))
	rows := pageRows(t, doc)
	if _, ok := rows[[2]string{hostile, a.URL}]; !ok {
		t.Fatalf("no row with the pool's name as its data-pool: %v", rows)
	}
	if got := findAll(doc, func(n *html.Node) bool { return n.DataAtom == atom.Script }); len(got) != 1 {
		t.Fatalf("%d scripts", len(got))
	}
	// The name is addressable in the API, path-escaped.
	ss2 := newStatsServer(t, Config{Token: "t"}, []*balancer.Pool{p})
	resp, body := ss2.do("POST", "/api/pools/"+strings.ReplaceAll(urlPathEscape(hostile), "/", "%2F")+"/endpoints/weight", "t", "", fmt.Sprintf(`{"url": %q, "weight": 2}`, a.URL))
	if resp.StatusCode != 200 {
		t.Fatalf("weight on the hostile pool: %d %s", resp.StatusCode, body)
	}
}

func urlPathEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// fakeCluster is a ClusterView with fixed members and peer views.
type fakeCluster struct {
	mu      sync.Mutex
	members []cluster.Member
	views   []cluster.PeerView
}

func (f *fakeCluster) Members() []cluster.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *fakeCluster) PeerViews() []cluster.PeerView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.views)
}

var (
	_ ClusterView = (*fakeCluster)(nil)
	_ ClusterView = (*cluster.Cluster)(nil)
)

func TestStatsPeerViews(t *testing.T) {
	a, b := balancertest.NewBackend(t), balancertest.NewBackend(t)
	p := balancertest.NewPool(t, balancer.Config{Name: "app", Endpoints: []string{a.URL, b.URL}})
	now := time.Now().UTC().Truncate(time.Second)
	fc := &fakeCluster{
		members: []cluster.Member{
			{Name: "lb-a", Addr: "10.0.0.1:7946", State: "alive", Self: true},
			{Name: "lb-b", Addr: "10.0.0.2:7946", State: "alive"},
			{Name: "lb-c", Addr: "10.0.0.3:7946", State: "suspect"},
		},
		views: []cluster.PeerView{
			{Node: "lb-c", Pool: "app", Endpoint: a.URL, State: balancer.StateDown, Updated: now},
			{Node: "lb-b", Pool: "app", Endpoint: b.URL, State: balancer.StateEjected, Until: now.Add(time.Minute), Updated: now},
			{Node: "lb-b", Pool: "app", Endpoint: a.URL, State: balancer.StateUp, Updated: now},
			{Node: "lb-a", Pool: "app", Endpoint: a.URL, State: balancer.StateUp, Updated: now}, // this node's own
		},
	}

	// Without a cluster view, no peer columns and no members.
	plain := newStatsServer(t, Config{}, []*balancer.Pool{p})
	if got := findAll(plain.page(), func(n *html.Node) bool { _, ok := attr(n, "data-peer"); return ok }); len(got) != 0 {
		t.Fatalf("peer cells without a cluster: %d", len(got))
	}

	ss := newStatsServer(t, Config{}, []*balancer.Pool{p}, WithClusterView(fc))
	r := ss.report()
	if r.Node != "lb-a" || len(r.Members) != 3 || len(r.PeerViews) != 4 {
		t.Fatalf("report: %+v", r)
	}
	if !slices.IsSortedFunc(r.PeerViews, func(x, y cluster.PeerView) int {
		return strings.Compare(x.Pool+" "+x.Endpoint+" "+x.Node, y.Pool+" "+y.Endpoint+" "+y.Node)
	}) {
		t.Fatalf("peer views not sorted: %+v", r.PeerViews)
	}
	doc := ss.page()
	var heads []string
	for _, th := range findAll(doc, func(n *html.Node) bool { _, ok := attr(n, "data-peer"); return n.DataAtom == atom.Th && ok }) {
		v, _ := attr(th, "data-peer")
		heads = append(heads, v)
	}
	if !slices.Equal(heads, []string{"lb-b", "lb-c"}) {
		t.Fatalf("peer columns %v, want lb-b and lb-c (not this node)", heads)
	}
	rows := pageRows(t, doc)
	want := map[string]map[string]string{
		a.URL: {"lb-b": "up", "lb-c": "down"},
		b.URL: {"lb-b": "ejected", "lb-c": "-"},
	}
	for ep, peers := range want {
		row := rows[[2]string{"app", ep}]
		for peer, state := range peers {
			if row.peers[peer] != state {
				t.Errorf("%s seen by %s: %q, want %q", ep, peer, row.peers[peer], state)
			}
		}
	}
	checkRowsMatch(t, rows, r)
	members := findAll(doc, func(n *html.Node) bool { _, ok := attr(n, "data-member"); return ok })
	if len(members) != 3 || !strings.Contains(textOf(members[0]), "this node") || !strings.Contains(textOf(members[2]), "suspect") {
		t.Fatalf("members on the page: %d", len(members))
	}
}

// TestStatsPageInABrowser loads the page in headless Chromium, so that its
// script runs, and compares the table the browser holds with the JSON.
func TestStatsPageInABrowser(t *testing.T) {
	bin := chromium.Find(t)
	a, b, c := balancertest.NewBackend(t), balancertest.NewBackend(t), balancertest.NewBackend(t)
	web := balancertest.NewPool(t, balancer.Config{Name: "web", Endpoints: []string{a.URL, b.URL, c.URL}})
	app := balancertest.NewPool(t, balancer.Config{Name: "app <&>", Endpoints: []string{c.URL}})
	for range 7 {
		_, _, _ = balancertest.Get(t, web.Client(), "http://upstream/")
		_, _, _ = balancertest.Get(t, app.Client(), "http://upstream/")
	}
	if err := web.SetWeight(b.URL, 4); err != nil {
		t.Fatal(err)
	}
	if err := web.Drain(context.Background(), c.URL); err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{
		members: []cluster.Member{{Name: "lb-a", State: "alive", Self: true}, {Name: "lb-b", State: "alive"}},
		views:   []cluster.PeerView{{Node: "lb-b", Pool: "web", Endpoint: a.URL, State: balancer.StateEjected, Updated: time.Now()}},
	}
	// The pools are idle from here on: the page and the JSON see the same
	// figures.
	ss := newStatsServer(t, Config{Refresh: 200 * time.Millisecond}, []*balancer.Pool{web, app}, WithClusterView(fc))

	// Let the page's clock run a second before the dump, so that its
	// refresh (every 200ms) swaps the table at least once.
	dump := chromium.DumpDOM(t, bin, ss.base+"/", time.Second)
	r := ss.report()

	doc, err := html.Parse(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	root := findAll(doc, func(n *html.Node) bool { return n.DataAtom == atom.Html })
	if len(root) != 1 {
		t.Fatalf("no <html> in the dump:\n%s", dump)
	}
	if live, _ := attr(root[0], "data-live"); live != "on" {
		t.Fatalf("the page's script did not run (data-live=%q)", live)
	}
	if n, _ := attr(root[0], "data-refreshes"); n == "" || n == "0" {
		t.Fatalf("the page did not refresh itself (data-refreshes=%q)", n)
	} else {
		t.Logf("the page refreshed itself %s times", n)
	}
	rows := pageRows(t, doc)
	checkRowsMatch(t, rows, r)
	if got := rows[[2]string{"web", a.URL}].peers["lb-b"]; got != "ejected" {
		t.Errorf("lb-b's view of %s in the browser: %q", a.URL, got)
	}
	if got := rows[[2]string{"web", c.URL}].fields["state"]; got != "draining" {
		t.Errorf("drained endpoint in the browser: %q", got)
	}
}

// TestStatsPageActionsInABrowser drives the page's buttons in headless
// Chromium: the token is asked for once (again only after a refusal) and
// kept nowhere but in the page, each action sends the body the API
// documents and takes effect, a refused one shows the problem's detail,
// and the page, with two peers' columns and the action buttons, fits a
// 1280-pixel-wide window.
func TestStatsPageActionsInABrowser(t *testing.T) {
	bin := chromium.Find(t)
	a, b, c := balancertest.NewBackend(t), balancertest.NewBackend(t), balancertest.NewBackend(t)
	web := balancertest.NewPool(t, balancer.Config{Name: "web", Endpoints: []string{a.URL, b.URL},
		Backups: []string{"http://10.200.100.123:18080"}})
	limiter, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	fc := &fakeCluster{
		members: []cluster.Member{{Name: "lb-a", State: "alive", Self: true}, {Name: "lb-b", State: "alive"}, {Name: "lb-c", State: "alive"}},
		views: []cluster.PeerView{
			{Node: "lb-b", Pool: "web", Endpoint: a.URL, State: balancer.StateEjected, Updated: time.Now()},
			{Node: "lb-c", Pool: "web", Endpoint: b.URL, State: balancer.StateUp, Updated: time.Now()},
		},
	}
	ss := newStatsServer(t, Config{Token: "s3cret", Refresh: 300 * time.Millisecond, SampleInterval: 20 * time.Millisecond},
		[]*balancer.Pool{web}, WithClusterView(fc), WithRateLimiter(limiter))
	for range 5 {
		_, _, _ = balancertest.Get(t, web.Client(), "http://web/")
	}
	page := chromium.Open(t, bin, ss.base+"/", 1280, 800)
	page.WaitFor(5*time.Second, "the page's script", `document.documentElement.getAttribute("data-live") === "on"`)
	if w := string(page.Eval(`document.documentElement.scrollWidth`)); w != "1280" {
		t.Errorf("the page is %s pixels wide in a 1280-pixel window", w)
	}

	// The dialogs answer from a queue the test fills, and say what they
	// were asked.
	page.Eval(`window.replies = []; window.asked = []; window.confirmed = false;
		window.prompt = function (m) { window.asked.push(m); return window.replies.length ? window.replies.shift() : null; };
		window.confirm = function (m) { window.asked.push(m); return window.confirmed; }; true`)
	tokenAsks := func() int {
		n, _ := strconv.Atoi(string(page.Eval(`window.asked.filter(function (m) { return m.indexOf("token") >= 0; }).length`)))
		return n
	}
	// click presses the button of action in the row (or section) that
	// selector picks, once dialogs will give replies, and returns the
	// outcome the page shows.
	click := func(selector, action string, replies ...string) (state, text string) {
		t.Helper()
		js, _ := json.Marshal(replies)
		page.Eval(`window.replies = ` + string(js) + `; document.getElementById("action-result").textContent = "";
			document.querySelector(` + strconv.Quote(selector+` button[data-action="`+action+`"]`) + `).click(); true`)
		page.WaitFor(10*time.Second, action+"'s outcome", `["ok", "error"].indexOf(document.getElementById("action-result").getAttribute("data-state")) >= 0 && document.getElementById("action-result").textContent !== ""`)
		return page.String(`document.getElementById("action-result").getAttribute("data-state")`), page.String(`document.getElementById("action-result").textContent`)
	}
	row := func(url string) string { return `tr[data-endpoint="` + url + `"]` }

	// A wrong token: the problem's detail is shown, nothing changes, and
	// the token is forgotten.
	if state, text := click(row(a.URL), "drain", "guess"); state != "error" || !strings.Contains(text, "Authorization: Bearer") {
		t.Fatalf("drain with a wrong token: %s %q", state, text)
	}
	if st := balancertest.StatusOf(web, a.URL).State; st != balancer.StateUp {
		t.Fatalf("a refused drain changed the endpoint: %s", st)
	}
	if state, text := click(row(a.URL), "drain", "s3cret"); state != "ok" {
		t.Fatalf("drain: %s %q", state, text)
	}
	if st := balancertest.StatusOf(web, a.URL).State; st != balancer.StateDraining {
		t.Fatalf("after drain: %s", st)
	}
	page.WaitFor(5*time.Second, "the row to offer undrain", `document.querySelector(`+strconv.Quote(row(a.URL)+` button[data-action="undrain"]`)+`) !== null`)
	if state, text := click(row(a.URL), "undrain"); state != "ok" || balancertest.StatusOf(web, a.URL).State == balancer.StateDraining {
		t.Fatalf("undrain: %s %q, endpoint %s", state, text, balancertest.StatusOf(web, a.URL).State)
	}

	if state, text := click(row(b.URL), "weight", "5000"); state != "error" || !strings.Contains(text, "out of range") {
		t.Fatalf("weight 5000: %s %q", state, text)
	}
	if state, text := click(row(b.URL), "weight", "4"); state != "ok" || balancertest.StatusOf(web, b.URL).Weight != 4 {
		t.Fatalf("weight 4: %s %q, endpoint %+v", state, text, balancertest.StatusOf(web, b.URL))
	}

	if state, text := click(`section[data-pool="web"]`, "add", c.URL, "2"); state != "ok" {
		t.Fatalf("add: %s %q", state, text)
	}
	if st := balancertest.StatusOf(web, c.URL); st.URL != c.URL || st.Weight != 2 || st.Backup {
		t.Fatalf("after add: %+v", st)
	}
	page.WaitFor(5*time.Second, "the added endpoint's row", `document.querySelector(`+strconv.Quote(row(c.URL))+`) !== null`)
	page.Eval(`window.confirmed = true`)
	if state, text := click(row(c.URL), "remove"); state != "ok" || balancertest.StatusOf(web, c.URL).URL != "" {
		t.Fatalf("remove: %s %q", state, text)
	}

	if state, text := click(`#rate-limits > p.meta`, "block", "203.0.113.7", "10m"); state != "ok" || !limiter.Allow("203.0.113.7", time.Now()).Blocked {
		t.Fatalf("block: %s %q", state, text)
	}
	page.WaitFor(5*time.Second, "the block's row", `document.querySelector('tr[data-block="203.0.113.7"]') !== null`)
	if state, text := click(`tr[data-block="203.0.113.7"]`, "unblock"); state != "ok" || limiter.Allow("203.0.113.7", time.Now()).Blocked {
		t.Fatalf("unblock: %s %q", state, text)
	}

	if n := tokenAsks(); n != 2 {
		t.Errorf("the token was asked for %d times, want 2: once, and again after the refusal", n)
	}
	if kept := string(page.Eval(`localStorage.length + sessionStorage.length + document.cookie.length`)); kept != "0" {
		t.Errorf("the page stored something: %s", kept)
	}
}
