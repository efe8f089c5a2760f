package balancer

import (
	"context"
	"net"
)

// Local is a Discoverer over servers started in the same process, such as
// app.Server or web.Server instances run by the same tier.Runner: each
// server's bound address, as an http:// endpoint. A server that is not
// bound yet (its address still ends in ":0") is left out until it is, so
// start the servers before the pool, as tier.Run does when they come
// first. The list of servers is fixed when Local is called.
//
//	pool, err := balancer.New(cfg, balancer.WithDiscovery(balancer.Local(apps...)))
func Local[S interface{ Addr() string }](servers ...S) Discoverer {
	return localServers[S](append([]S(nil), servers...))
}

type localServers[S interface{ Addr() string }] []S

// Discover lists the servers that are bound.
func (l localServers[S]) Discover(context.Context) ([]Endpoint, error) {
	eps := make([]Endpoint, 0, len(l))
	for _, s := range l {
		addr := s.Addr()
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			continue
		}
		eps = append(eps, Endpoint{URL: "http://" + addr})
	}
	return eps, nil
}
