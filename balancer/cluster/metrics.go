package cluster

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
)

// clusterMetrics exports a Cluster as threetier_balancer_cluster_* metrics;
// member counts are read when scraped.
type clusterMetrics struct {
	c                       *Cluster
	sent, received, applied atomic.Uint64

	members, sentD, receivedD, appliedD *prometheus.Desc
}

func newClusterMetrics(c *Cluster, reg prometheus.Registerer) (*clusterMetrics, error) {
	name := func(n string) string { return prometheus.BuildFQName(obs.Namespace, "balancer_cluster", n) }
	m := &clusterMetrics{
		c:         c,
		members:   prometheus.NewDesc(name("members"), "Cluster members as this node sees them, by state (alive, suspect, dead, left), itself included.", []string{"state"}, nil),
		sentD:     prometheus.NewDesc(name("events_sent_total"), "Changes of this node's own endpoint state sent to its peers.", nil, nil),
		receivedD: prometheus.NewDesc(name("events_received_total"), "Endpoint state reports received from peers, repeats included.", nil, nil),
		appliedD:  prometheus.NewDesc(name("events_applied_total"), "Reports received that were new and taken into this node's view.", nil, nil),
	}
	if err := obs.Registerer(reg).Register(m); err != nil {
		return nil, err
	}
	return m, nil
}

// Describe implements prometheus.Collector.
func (m *clusterMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.members, m.sentD, m.receivedD, m.appliedD} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *clusterMetrics) Collect(ch chan<- prometheus.Metric) {
	n := map[string]int{"alive": 0, "suspect": 0, "dead": 0, "left": 0}
	for _, mb := range m.c.Members() {
		n[mb.State]++
	}
	for state, v := range n {
		ch <- prometheus.MustNewConstMetric(m.members, prometheus.GaugeValue, float64(v), state)
	}
	ch <- prometheus.MustNewConstMetric(m.sentD, prometheus.CounterValue, float64(m.sent.Load()))
	ch <- prometheus.MustNewConstMetric(m.receivedD, prometheus.CounterValue, float64(m.received.Load()))
	ch <- prometheus.MustNewConstMetric(m.appliedD, prometheus.CounterValue, float64(m.applied.Load()))
}
