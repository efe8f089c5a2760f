package balancer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// DNS discovers endpoints in DNS, the way Kubernetes headless Services and
// Consul publish them. Plain: every A and AAAA address of Host, at Port.
// SRV: every SRV record of Host ("_http._tcp.app.service.consul"), each
// target resolved to its addresses at the record's port, weighted by the
// record's weight (clamped to 1..MaxWeight); records of the lowest priority
// are primaries and the others backups. A target that does not exist is
// left out; one whose lookup fails otherwise fails the whole discovery, so
// that the pool keeps the endpoints it has.
type DNS struct {
	Host string
	Port int  // plain lookups only
	SRV  bool // look up SRV records instead of addresses
	// Scheme of the endpoints: "http" (the default) or "https".
	Scheme string
	// Network is "ip4" or "ip6" to keep only the addresses of one family
	// (so that a dual-stack instance is not counted twice); zero means both.
	Network string
	// Resolver to use; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

var _ Discoverer = (*DNS)(nil)

// ParseDiscovery reads a discovery URL, as Config.Discovery holds it:
//
//	dns://app.default.svc.cluster.local:8080   A/AAAA records, port 8080
//	srv://_http._tcp.app.service.consul        SRV records
//
// "dns+https://" and "srv+https://" give https endpoints.
func ParseDiscovery(raw string) (*DNS, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, errors.New("not a discovery URL")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return nil, errors.New("must be only scheme and host")
	}
	kind, scheme, _ := strings.Cut(u.Scheme, "+")
	if scheme == "" {
		scheme = "http"
	}
	if scheme != "http" && scheme != "https" {
		return nil, errors.New("endpoint scheme must be http or https")
	}
	d := &DNS{Host: u.Hostname(), Scheme: scheme}
	if d.Host == "" {
		// "srv://:" or "dns://:80": a host part with no name in it.
		return nil, errors.New("discovery URL names no host")
	}
	switch kind {
	case "dns":
		port, err := strconv.Atoi(u.Port())
		if err != nil || port < 1 || port > 65535 {
			return nil, errors.New("dns:// needs a port")
		}
		d.Port = port
	case "srv":
		if u.Port() != "" {
			return nil, errors.New("srv:// takes the port from the records")
		}
		d.SRV = true
	default:
		return nil, errors.New("scheme must be dns or srv")
	}
	return d, nil
}

// Discover resolves the name now.
func (d *DNS) Discover(ctx context.Context) ([]Endpoint, error) {
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	scheme := d.Scheme
	if scheme == "" {
		scheme = "http"
	}
	network := d.Network
	if network == "" {
		network = "ip"
	}
	if !d.SRV {
		ips, err := r.LookupNetIP(ctx, network, d.Host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", d.Host, err)
		}
		eps := make([]Endpoint, 0, len(ips))
		for _, ip := range ips {
			eps = append(eps, Endpoint{URL: scheme + "://" + net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(d.Port))})
		}
		return eps, nil
	}
	_, srvs, err := r.LookupSRV(ctx, "", "", d.Host)
	if err != nil {
		return nil, fmt.Errorf("resolve SRV %s: %w", d.Host, err)
	}
	if len(srvs) == 0 {
		return nil, nil
	}
	best := slices.MinFunc(srvs, func(a, b *net.SRV) int { return int(a.Priority) - int(b.Priority) }).Priority
	var eps []Endpoint
	var errs []error
	for _, s := range srvs {
		ips, err := r.LookupNetIP(ctx, network, s.Target)
		if err != nil {
			err = fmt.Errorf("resolve SRV target %s: %w", s.Target, err)
			var dnsErr *net.DNSError
			if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
				// Not an answer but a failure to get one: a partial list
				// would remove the target's endpoints, healthy or not.
				return nil, err
			}
			errs = append(errs, err) // the target is gone
			continue
		}
		for _, ip := range ips {
			eps = append(eps, Endpoint{
				URL:    scheme + "://" + net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(int(s.Port))),
				Weight: min(max(int(s.Weight), 1), MaxWeight),
				Backup: s.Priority != best,
			})
		}
	}
	if len(eps) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return eps, nil
}
