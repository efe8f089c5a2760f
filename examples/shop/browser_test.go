package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/chromium"
)

// TestStorefrontInABrowser loads the storefront through a front door in
// headless Chromium: the catalogue is listed, an order placed by the page's
// own code (the path the "Place order" button takes) is shown with its id
// and items, and the API has it.
func TestStorefrontInABrowser(t *testing.T) {
	bin := chromium.Find(t)
	s := startShop(t)

	dom := chromium.DumpDOM(t, bin, s.door(0)+"/", 5*time.Second)
	if !strings.Contains(dom, `data-state="ready"`) {
		t.Fatalf("the page did not get to ready:\n%s", dom)
	}
	for _, name := range []string{"Espresso cup", "Hand grinder", "Last-edition mug"} {
		if !strings.Contains(dom, name) {
			t.Errorf("catalogue without %q", name)
		}
	}
	if n := strings.Count(dom, `<tr data-product-id=`); n != 8 {
		t.Errorf("%d product rows, want 8", n)
	}

	before1, before3 := s.product(t, 1), s.product(t, 3)
	dom = chromium.DumpDOM(t, bin, s.door(1)+"/?demo=order:1x2,3x1", 5*time.Second)
	if !strings.Contains(dom, `data-state="order"`) {
		t.Fatalf("no order shown:\n%s", dom)
	}
	m := regexp.MustCompile(`id="order" aria-labelledby="order-title" data-order-id="(\d+)"`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no order id in the page:\n%s", dom)
	}
	id := m[1]
	if !strings.Contains(dom, `<span id="order-id">#`+id+`</span>`) {
		t.Errorf("order id %s not shown", id)
	}
	for _, line := range []string{`data-product-id="1" data-quantity="2"><td>Espresso cup</td>`, `data-product-id="3" data-quantity="1"><td>Hand grinder</td>`} {
		if !strings.Contains(dom, line) {
			t.Errorf("order page without %s:\n%s", line, dom)
		}
	}

	// The API has the order the page showed, and the stock went down.
	var o Order
	a := do(t, s.client, "GET", fmt.Sprintf("%s/api/orders/%s", s.door(0), id), "")
	if a.status != 200 {
		t.Fatalf("order %s: %d %s", id, a.status, a.body)
	}
	a.decode(t, &o)
	if len(o.Items) != 2 || o.Items[0].ProductID != 1 || o.Items[0].Quantity != 2 || o.Items[1].ProductID != 3 || o.Items[1].Quantity != 1 {
		t.Fatalf("order %s: %+v", id, o)
	}
	if p := s.product(t, 1); p.Stock != before1.Stock-2 {
		t.Errorf("stock of 1: %d, want %d", p.Stock, before1.Stock-2)
	}
	if p := s.product(t, 3); p.Stock != before3.Stock-1 {
		t.Errorf("stock of 3: %d, want %d", p.Stock, before3.Stock-1)
	}

	// The order's own page, as a link to it opens it.
	dom = chromium.DumpDOM(t, bin, s.door(0)+"/?order="+id, 5*time.Second)
	if !strings.Contains(dom, `<span id="order-id">#`+id+`</span>`) || !strings.Contains(dom, "Hand grinder") {
		t.Errorf("order page /?order=%s:\n%s", id, dom)
	}

	// An error is shown to the person: more than the stock.
	dom = chromium.DumpDOM(t, bin, s.door(0)+"/?demo=order:8x99", 5*time.Second)
	if !strings.Contains(dom, `data-error="409"`) || !strings.Contains(dom, "not enough stock of") {
		t.Errorf("a refused order is not shown as such:\n%s", dom)
	}
}

// backPage holds the storefront in a frame, on the storefront's own origin;
// once the demo order is shown it goes Back and writes down every state
// the frame then takes, and where it is. It waits on the page's own
// changes, never on timers: the browser's virtual clock would race ahead
// of the network.
const backPage = `<!doctype html><html><body><iframe id="shop" src="/?demo=order:1x1"></iframe><pre id="log"></pre>
<script>
const frame = document.getElementById("shop");
const say = (m) => { document.getElementById("log").textContent += m + "\n"; };
let ordered = "";
frame.addEventListener("load", () => {
  const doc = frame.contentDocument.documentElement;
  new MutationObserver(() => {
    const where = frame.contentWindow.location.search, state = doc.dataset.state;
    if (ordered) {
      say("after Back at [" + where + "] in state " + state);
    } else if (state === "order") {
      ordered = where;
      say("ordered at [" + where + "]");
      history.back();
    }
  }).observe(doc, { attributes: true, attributeFilter: ["data-state"] });
});
</script></body></html>`

// TestStorefrontDemoOrderRunsOnce: after /?demo=order:1x1 has placed its
// order, Back shows the storefront and places nothing more.
func TestStorefrontDemoOrderRunsOnce(t *testing.T) {
	bin := chromium.Find(t)
	s := startShop(t)
	before := s.product(t, 1)

	// The page that presses Back is served beside the storefront, through
	// a proxy to a front door, so that it may look into the frame.
	door, err := url.Parse(s.door(0))
	if err != nil {
		t.Fatal(err)
	}
	px := httputil.NewSingleHostReverseProxy(door)
	tr := &http.Transport{}
	px.Transport = tr
	mux := http.NewServeMux()
	mux.Handle("/", px)
	mux.HandleFunc("GET /back-test", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(backPage))
	})
	front := httptest.NewServer(mux)
	t.Cleanup(func() {
		front.Close()
		tr.CloseIdleConnections()
	})

	dom := chromium.DumpDOM(t, bin, front.URL+"/back-test", 5*time.Second)
	m := regexp.MustCompile(`ordered at \[\?order=(\d+)\]\n((?:after Back .*\n)+)`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the page did not get through the order and Back:\n%s", dom)
	}
	if want := "after Back at [] in state ready\n"; m[2] != want {
		t.Errorf("after Back:\n%swant only\n%s", m[2], want)
	}
	if p := s.product(t, 1); p.Stock != before.Stock-1 {
		t.Errorf("stock of 1: %d, was %d: the demo ordered %d times", p.Stock, before.Stock, before.Stock-p.Stock)
	}
	id, _ := strconv.Atoi(m[1])
	if next := do(t, s.client, "GET", fmt.Sprintf("%s/api/orders/%d", s.door(0), id+1), ""); next.status != http.StatusNotFound {
		t.Errorf("an order after the demo's: %d %s", next.status, next.body)
	}
}
