package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// poolCollector reads the store's connection pools at every scrape.
type poolCollector struct {
	stats func() []store.PoolStats

	maxConns, conns, reads, retries, lag, state *prometheus.Desc
}

// ObservePools exposes the primary's and each read replica's pool: sizes,
// read queries answered, retries, replica lag and state.
func (m *Metrics) ObservePools(stats func() []store.PoolStats) {
	m.Registry.MustRegister(&poolCollector{
		stats: stats,
		maxConns: prometheus.NewDesc("xtrace_db_pool_max_connections",
			"Size limit of each database connection pool (primary, read replicas).", []string{"pool"}, nil),
		conns: prometheus.NewDesc("xtrace_db_pool_connections",
			"Open connections of each pool, idle or acquired.", []string{"pool", "state"}, nil),
		reads: prometheus.NewDesc("xtrace_db_pool_reads_total",
			"Read-only queries answered by each pool.", []string{"pool"}, nil),
		retries: prometheus.NewDesc("xtrace_db_replica_read_retries_total",
			"Read queries that failed on a replica and were retried on another replica or the primary.", []string{"pool"}, nil),
		lag: prometheus.NewDesc("xtrace_db_replica_lag_seconds",
			"Last measured replay lag of each read replica (absent while unknown).", []string{"pool"}, nil),
		state: prometheus.NewDesc("xtrace_db_replica_state",
			"1 for the state each read replica is in: serving (reads go there), lagging (beyond XTRACE_READ_MAX_LAG), down (failing; retried with backoff), starting.",
			[]string{"pool", "state"}, nil),
	})
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxConns, c.conns, c.reads, c.retries, c.lag, c.state} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.stats() {
		ch <- prometheus.MustNewConstMetric(c.maxConns, prometheus.GaugeValue, float64(p.MaxConns), p.Name)
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(p.Idle), p.Name, "idle")
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(p.Acquired), p.Name, "acquired")
		ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(p.Reads), p.Name)
		if !p.Replica {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.retries, prometheus.CounterValue, float64(p.Retries), p.Name)
		if p.LagKnown {
			ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, p.Lag.Seconds(), p.Name)
		}
		for _, s := range store.ReplicaStates {
			v := 0.0
			if s == p.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, p.Name, s)
		}
	}
}

// ObserveTraceCommits exposes how the trace writer commits: the flush's
// share of a group's commit and whether two groups commit at once.
func (m *Metrics) ObserveTraceCommits(flushShare func() float64, overlap func() bool) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrace_trace_commit_flush_share",
			Help: "Moving average of how long a transaction that only commits takes, as a share of a trace group's commit: near 1 when the flush to disk is the limit."}, flushShare),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "xtrace_trace_commits_overlap",
			Help: "1 while two trace groups may commit at once (that way committed more rows per second in the last trial), 0 while one at a time."},
			func() float64 {
				if overlap() {
					return 1
				}
				return 0
			}),
	)
}
