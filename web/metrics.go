package web

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
)

const metricsSubsystem = "web"

// filesMetrics are the file handler's cache and compression counters.
type filesMetrics struct {
	hits, misses                    prometheus.Counter
	bytes                           prometheus.Gauge
	compressions, compressesSkipped prometheus.Counter
	compressedBytes                 prometheus.Gauge
}

// newFilesMetrics registers the cache metrics; handlers sharing a registry
// share (and add up in) the same series.
func newFilesMetrics(reg prometheus.Registerer) (*filesMetrics, error) {
	reg = obs.Registerer(reg)
	m := &filesMetrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem,
			Name: "file_cache_hits_total", Help: "File lookups answered from the in-memory cache.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem,
			Name: "file_cache_misses_total", Help: "File lookups that went to disk.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem,
			Name: "file_cache_bytes", Help: "Bytes held by the in-memory file cache.",
		}),
		compressions: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem,
			Name: "compressions_total", Help: "Compressions made: forms kept in memory once made, and responses compressed while sent.",
		}),
		compressesSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem,
			Name: "compressions_skipped_total", Help: "Responses sent uncompressed because every compression slot was taken.",
		}),
		compressedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: obs.Namespace, Subsystem: metricsSubsystem,
			Name: "compressed_cache_bytes", Help: "Bytes held by the in-memory cache of compressed forms.",
		}),
	}
	var err error
	if m.hits, err = obs.RegisterShared(reg, m.hits); err != nil {
		return nil, err
	}
	if m.misses, err = obs.RegisterShared(reg, m.misses); err != nil {
		return nil, err
	}
	if m.bytes, err = obs.RegisterShared(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.compressions, err = obs.RegisterShared(reg, m.compressions); err != nil {
		return nil, err
	}
	if m.compressesSkipped, err = obs.RegisterShared(reg, m.compressesSkipped); err != nil {
		return nil, err
	}
	if m.compressedBytes, err = obs.RegisterShared(reg, m.compressedBytes); err != nil {
		return nil, err
	}
	return m, nil
}
