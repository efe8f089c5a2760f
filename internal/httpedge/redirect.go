package httpedge

import (
	"net"
	"net/http"

	"github.com/threetier/threetier/tier"
)

// RedirectHTTPS answers every request with a redirect to the same host and
// path over HTTPS, on httpsAddr's port (none in the URL for 443). 308 keeps
// the method and body of non-GET requests. httpsAddr is asked per request,
// so that it can name a port bound at Start.
func RedirectHTTPS(httpsAddr func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1] // "[::1]" without a port
		}
		if host == "" {
			tier.ServeProblem(w, r, tier.NewProblem(http.StatusBadRequest, "a Host header is needed to redirect to HTTPS"))
			return
		}
		if _, port, err := net.SplitHostPort(httpsAddr()); err == nil && port != "443" {
			host = net.JoinHostPort(host, port)
		} else if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			host = "[" + host + "]"
		}
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}
