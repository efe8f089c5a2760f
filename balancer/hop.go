package balancer

import (
	"net/textproto"
	"strconv"
	"strings"

	"github.com/threetier/threetier/internal/httpx"
	"github.com/threetier/threetier/tier"
)

// The forwarding policy of the front door, one piece of code for both
// engines: each reads its client's headers as (name, value) pairs with
// canonical names, asks requestHeaderRule and listedIn what to do with
// each, and writes this hop's own headers with the append functions
// below. A response's headers go back through responseHeaderKept.

// headerRule is what happens to one of the client's request headers on
// its way upstream.
type headerRule uint8

const (
	ruleKeep headerRule = iota
	// ruleDrop: a hop-by-hop header, or a forwarding header from a peer
	// that is not a trusted proxy (the edge drops a client's claims
	// about itself).
	ruleDrop
	// ruleForwardedFor: a trusted peer's X-Forwarded-For or Forwarded,
	// which this hop appends its own element to.
	ruleForwardedFor
	// ruleForwardedSet: a trusted peer's X-Forwarded-Proto or -Host,
	// kept as it is instead of this hop's.
	ruleForwardedSet
	// ruleTE: TE, of which only "trailers" is end to end (gRPC needs it).
	ruleTE
	// ruleRequestID: replaced by the request ID this hop forwards.
	ruleRequestID
	// ruleTimeout: the caller's deadline (tier.HeaderTimeout), which may
	// shorten this hop's; each attempt sends what is left of it.
	ruleTimeout
)

// requestHeaderRule says what becomes of the client's request header
// name (canonical) on its way upstream. Headers the Connection header
// names are dropped too (listedIn).
func requestHeaderRule(name string, trusted bool) headerRule {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Trailer", "Transfer-Encoding", "Upgrade":
		return ruleDrop
	case "Te":
		return ruleTE
	case tier.HeaderRequestID:
		return ruleRequestID
	case tier.HeaderTimeout:
		return ruleTimeout
	case "X-Forwarded-For", "Forwarded":
		if trusted {
			return ruleForwardedFor
		}
		return ruleDrop
	case "X-Forwarded-Proto", "X-Forwarded-Host":
		if trusted {
			return ruleForwardedSet
		}
		return ruleDrop
	}
	return ruleKeep
}

// responseHeaderKept reports whether an upstream's response header name
// (canonical) goes on to the client: not the hop-by-hop ones, nor the
// drain signal, which is for this hop (see leaving). Headers the
// response's Connection header names are dropped too (listedIn).
func responseHeaderKept(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade", httpx.DrainingHeader:
		return false
	}
	return true
}

// listedIn reports whether the Connection header value connection names
// the header name, which makes it hop-by-hop.
func listedIn(connection, name string) bool {
	if connection == "" {
		return false
	}
	for token := range strings.SplitSeq(connection, ",") {
		if strings.EqualFold(textproto.TrimString(token), name) {
			return true
		}
	}
	return false
}

// upstreamHost is the Host a request for clientHost carries upstream
// under rt's policy; "" means the endpoint's host:port.
func (rt *route) upstreamHost(clientHost string) string {
	switch rt.HostHeader {
	case HostPass:
		return clientHost
	case HostEndpoint:
		return ""
	}
	return rt.HostHeader
}

// appendForwardedFor appends the X-Forwarded-For value this hop sends:
// the trusted peer's prior value, if any, then the client's address.
func appendForwardedFor(dst []byte, prior, client string) []byte {
	switch {
	case prior != "" && client != "":
		dst = append(dst, prior...)
		dst = append(dst, ", "...)
		return append(dst, client...)
	case prior != "":
		return append(dst, prior...)
	}
	return append(dst, client...)
}

// appendForwarded appends the Forwarded value this hop sends: the
// trusted peer's prior elements, if any, then this hop's RFC 7239
// element.
func appendForwarded(dst []byte, prior, client, host, proto string) []byte {
	if prior != "" {
		dst = append(dst, prior...)
		dst = append(dst, ", "...)
	}
	dst = append(dst, "for="...)
	switch {
	case client == "":
		dst = append(dst, "unknown"...)
	case strings.Contains(client, ":"):
		dst = append(dst, `"[`...) // IPv6 must be quoted
		dst = append(dst, client...)
		dst = append(dst, `]"`...)
	default:
		dst = append(dst, client...)
	}
	if host != "" {
		dst = append(dst, ";host="...)
		dst = appendForwardedValue(dst, host)
	}
	dst = append(dst, ";proto="...)
	return append(dst, proto...)
}

// appendForwardedValue appends v, quoted when it is not an RFC 7230
// token.
func appendForwardedValue(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return strconv.AppendQuote(dst, v)
		}
	}
	return append(dst, v...)
}

// schemeOf is the X-Forwarded-Proto of a client connection.
func schemeOf(tls bool) string {
	if tls {
		return "https"
	}
	return "http"
}
