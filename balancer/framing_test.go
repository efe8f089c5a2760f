package balancer

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/threetier/threetier/internal/framingtest"
	"github.com/threetier/threetier/internal/testcert"
)

// TestProxyFraming sends every request-smuggling vector to a front door,
// in cleartext and over TLS (HTTP/1.1 by ALPN): each is answered 400 (or
// 405, 501) as a problem, the connection closes, and the upstream never
// sees the request hidden behind the bad framing.
func TestProxyFraming(t *testing.T) {
	forEngine(t, func(t *testing.T, engine string) {
		up := framingtest.NewUpstream(t)
		pool := newPool(t, Config{Name: "app", Endpoints: []string{up.URL}, Retry: RetryConfig{Attempts: 2}})
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		roots := testcert.Write(t, certFile, keyFile, 1)
		for _, tc := range []struct {
			name string
			cfg  ProxyConfig
			dial func(addr string) framingtest.Dial
		}{
			{"cleartext", ProxyConfig{Listen: "127.0.0.1:0", Engine: engine}, framingtest.TCP},
			{"TLS", ProxyConfig{Listen: "127.0.0.1:0", Engine: engine, TLSCert: certFile, TLSKey: keyFile}, func(addr string) framingtest.Dial {
				return func() (net.Conn, error) {
					d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second},
						Config: &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}}}
					return d.Dial("tcp", addr)
				}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				px, err := NewProxy(tc.cfg, []*Pool{pool})
				if err != nil {
					t.Fatal(err)
				}
				if err := px.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = px.Stop(context.Background()) })
				framingtest.Run(t, tc.dial(px.Addr()), up)
			})
		}
	})
}
