package balancer

import "testing"

// TestTLSServerName: https endpoints found in DNS are addresses, so their
// certificates are checked against the name looked up.
func TestTLSServerName(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		d    Discoverer
		want string
	}{
		{Config{}, nil, ""},
		{Config{TLSServerName: "app.internal"}, &DNS{Host: "x", Scheme: "https"}, "app.internal"},
		{Config{}, &DNS{Host: "app.default.svc.cluster.local.", Scheme: "https"}, "app.default.svc.cluster.local"},
		{Config{}, &DNS{Host: "_https._tcp.app.service.consul", SRV: true, Scheme: "https"}, "app.service.consul"},
		{Config{}, &DNS{Host: "app", Scheme: "http"}, ""},
	} {
		if got := tlsServerName(tc.cfg, tc.d); got != tc.want {
			t.Errorf("%+v %+v: %q, want %q", tc.cfg, tc.d, got, tc.want)
		}
	}
}
