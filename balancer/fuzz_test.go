package balancer

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func FuzzParseEndpointURL(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080", "https://[::1]:443/", "http://h", "http://h:0", "ftp://x", "http://u@h", "http://h/p?q", " http://H:1 ", "%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseEndpointURL(raw)
		if err != nil {
			return
		}
		if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Path != "" {
			t.Fatalf("accepted %q as %#v", raw, u)
		}
		again, err := parseEndpointURL(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("%q -> %q does not parse to itself: %v", raw, u, err)
		}
	})
}

func FuzzParseDiscovery(f *testing.F) {
	for _, s := range []string{"dns://app:80", "srv://_http._tcp.app", "dns+https://a:1", "srv://x:1", "dns://", "x", "srv://:", "dns://:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := ParseDiscovery(raw)
		if err == nil && (d.Host == "" || (!d.SRV && d.Port == 0)) {
			t.Fatalf("accepted %q as %+v", raw, d)
		}
	})
}

func FuzzHashKey(f *testing.F) {
	f.Add("cookie:sid", `a=1; sid="x"; b`, "/p")
	f.Add("header:X-User", "", "")
	f.Add("client_addr", ";;==;", "/")
	f.Add("path", "sid", "/a/b")
	f.Fuzz(func(t *testing.T, spec, cookie, path string) {
		k, err := parseHashKey(spec)
		if err != nil {
			return
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = path
		req.Header.Set("Cookie", cookie)
		req.Header.Set("X-User", cookie)
		key, ok := k.of(req)
		if ok && key == "" && k.kind != "header" {
			t.Fatalf("empty key reported for %q", spec)
		}
		if k.kind == "cookie" && ok && !strings.Contains(cookie, key) {
			t.Fatalf("cookie value %q not in %q", key, cookie)
		}
	})
}

// FuzzProxyRoute feeds the front door's routing any host and path: it must
// pick a route without panicking, and a stripped path stays absolute.
func FuzzProxyRoute(f *testing.F) {
	for _, s := range [][2]string{{"shop.example.com", "/api/x"}, {"ADMIN.example.com:80", "/"}, {"[::1]:8080", "/api"}, {"", ""}, {"x.example.com", "/static/../api/"}, {":", "//api/"}} {
		f.Add(s[0], s[1])
	}
	pool, err := New(Config{Name: "p", Endpoints: []string{"http://127.0.0.1:1"}})
	if err != nil {
		f.Fatal(err)
	}
	px, err := NewProxy(ProxyConfig{Routes: []Route{
		{Host: "admin.example.com", Pool: "p"},
		{PathPrefix: "/api/", Pool: "p", StripPrefix: true},
		{Host: "*.example.com", PathPrefix: "/static/", Pool: "p"},
	}, DefaultPool: "-"}, []*Pool{pool})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		rt := px.match(host, path)
		if rt != nil && rt.StripPrefix && strings.HasPrefix(path, "/") {
			if got := stripPrefix(path, rt.PathPrefix); !strings.HasPrefix(got, "/") {
				t.Fatalf("stripPrefix(%q, %q) = %q", path, rt.PathPrefix, got)
			}
		}
	})
}
