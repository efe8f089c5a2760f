package data

import (
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/threetier/threetier/internal/obs"
)

// metrics exports the pools' statistics (read at scrape time from
// sql.DBStats), transaction retries and classified errors.
type metrics struct {
	pools    []pool
	replicas []*replica
	retries  prometheus.Counter
	errors   *prometheus.CounterVec
	commits  *prometheus.CounterVec // failed commits, by cause

	open, inUse, idle, maxOpen, waits, waitSecs, closed *prometheus.Desc

	lag, state, reads, fallbacks *prometheus.Desc // per replica
}

type pool struct {
	name string // "primary", "replica0", ...
	db   *sql.DB
}

var _ prometheus.Collector = (*metrics)(nil)

func newMetrics(db *DB) *metrics {
	ns := obs.Namespace
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "data", name), help, append([]string{"pool"}, labels...), nil)
	}
	m := &metrics{
		pools: []pool{{"primary", db.primary}},
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "data", Name: "tx_retries_total",
			Help: "Transactions rerun after a serialization failure, deadlock or busy database.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "data", Name: "errors_total",
			Help: "Failed statements by class (not_found, duplicate, violation, retryable, timeout, unavailable, other).",
		}, []string{"kind"}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "data", Name: "commit_failures_total",
			Help: "Transactions whose commit failed, by cause (disk_full, read_only, io_error, conflict, timeout, unavailable, other).",
		}, []string{"class"}),
		open:     desc("connections_open", "Connections open, in use or idle."),
		inUse:    desc("connections_in_use", "Connections running a statement or transaction."),
		idle:     desc("connections_idle", "Idle connections."),
		maxOpen:  desc("connections_max", "Cap on open connections."),
		waits:    desc("pool_waits_total", "Calls that waited for a free connection."),
		waitSecs: desc("pool_wait_seconds_total", "Time spent waiting for a free connection."),
		closed:   desc("connections_closed_total", "Connections closed by the pool, by reason.", "reason"),

		lag:       desc("replica_lag_seconds", "How long ago the primary first had WAL the replica has not replayed, as last polled."),
		state:     desc("replica_state", "1 for the replica's state: in (serves reads), lagging (further behind than the bound) or down (does not answer).", "state"),
		reads:     desc("replica_reads_total", "Reads sent to the replica."),
		fallbacks: desc("replica_fallbacks_total", "Reads the replica failed that were rerun on the primary."),
	}
	for _, r := range db.replicas {
		m.pools = append(m.pools, pool{r.name, r.pool})
	}
	m.replicas = db.replicas
	return m
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.open, m.inUse, m.idle, m.maxOpen, m.waits, m.waitSecs, m.closed, m.lag, m.state, m.reads, m.fallbacks} {
		ch <- d
	}
	m.retries.Describe(ch)
	m.errors.Describe(ch)
	m.commits.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, p := range m.pools {
		s := p.db.Stats()
		gauge := func(d *prometheus.Desc, v int) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), p.name)
		}
		gauge(m.open, s.OpenConnections)
		gauge(m.inUse, s.InUse)
		gauge(m.idle, s.Idle)
		gauge(m.maxOpen, s.MaxOpenConnections)
		ch <- prometheus.MustNewConstMetric(m.waits, prometheus.CounterValue, float64(s.WaitCount), p.name)
		ch <- prometheus.MustNewConstMetric(m.waitSecs, prometheus.CounterValue, s.WaitDuration.Seconds(), p.name)
		for reason, n := range map[string]int64{"max_idle": s.MaxIdleClosed, "max_idle_time": s.MaxIdleTimeClosed, "max_lifetime": s.MaxLifetimeClosed} {
			ch <- prometheus.MustNewConstMetric(m.closed, prometheus.CounterValue, float64(n), p.name, reason)
		}
	}
	for _, r := range m.replicas {
		ch <- prometheus.MustNewConstMetric(m.lag, prometheus.GaugeValue, time.Duration(r.lag.Load()).Seconds(), r.name)
		state := r.state.Load()
		for i, name := range stateNames {
			v := 0.0
			if int32(i) == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, v, r.name, name)
		}
		ch <- prometheus.MustNewConstMetric(m.reads, prometheus.CounterValue, float64(r.reads.Load()), r.name)
		ch <- prometheus.MustNewConstMetric(m.fallbacks, prometheus.CounterValue, float64(r.fallbacks.Load()), r.name)
	}
	m.retries.Collect(ch)
	m.errors.Collect(ch)
	m.commits.Collect(ch)
}

// countError counts a failed statement by its class.
func (m *metrics) countError(err error) {
	m.errors.WithLabelValues(kindLabel(err)).Inc()
}

func kindLabel(err error) string {
	switch kindOf(err) {
	case ErrNotFound:
		return "not_found"
	case ErrDuplicate:
		return "duplicate"
	case ErrViolation:
		return "violation"
	case ErrRetryable:
		return "retryable"
	case ErrTimeout:
		return "timeout"
	case ErrUnavailable:
		return "unavailable"
	}
	return "other"
}
