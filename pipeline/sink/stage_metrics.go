package sink

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Error classes of sluice_sink_errors_total (a closed set, never an error message).
const (
	// ErrClassTransient: a warehouse write, claim, decode or dead-letter produce failed
	// and is retried with backoff.
	ErrClassTransient = "transient"
	// ErrClassRejected: the warehouse rejected a row; it went to the DLQ.
	ErrClassRejected = "rejected"
	// ErrClassUndecodable: a record did not decode (malformed, unknown schema id); it
	// went to the DLQ.
	ErrClassUndecodable = "undecodable"
	// ErrClassIncompatible: a record's writer schema cannot be mapped onto its table
	// (a changed column type); it went to the DLQ.
	ErrClassIncompatible = "incompatible"
	// ErrClassFenced: another sink claimed the partition; this one stopped writing it.
	ErrClassFenced = "fenced"
	// ErrClassOffsetMismatch: the warehouse offset moved under the sink; it claimed
	// again and seeked there.
	ErrClassOffsetMismatch = "offset_mismatch"
)

// stageMetrics are the sink stage's Prometheus metrics. A nil *stageMetrics records
// nothing. Several stages may share one registry (a restarted stage in tests): the
// collectors are registered once and reused.
type stageMetrics struct {
	rows      *prometheus.CounterVec
	flush     *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	freshness *freshness
}

func newStageMetrics(reg prometheus.Registerer) (*stageMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &stageMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_rows_total", Help: "Rows committed to the warehouse by the sink, by table.",
		}, []string{"table"}),
		flush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_sink_flush_duration_seconds", Help: "Time of one sink flush: dead letters, staging and the commit of rows and offsets, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_sink_errors_total", Help: "Sink errors by table and class (transient, rejected, undecodable, incompatible, fenced, offset_mismatch).",
		}, []string{"table", "class"}),
		freshness: &freshness{
			desc: prometheus.NewDesc("sluice_sink_freshness_seconds",
				"Age of the newest row the sink committed to each table (now minus its sluice-ingest-ts), computed at scrape time: a stuck sink keeps it growing.",
				[]string{"table"}, nil),
			newest: map[*Stage]map[string]map[topicPartition]time.Time{},
			nows:   map[*Stage]func() time.Time{},
		},
	}
	var err error
	if m.rows, err = registerOrReuse(reg, m.rows); err != nil {
		return nil, err
	}
	if m.flush, err = registerOrReuse(reg, m.flush); err != nil {
		return nil, err
	}
	if m.errors, err = registerOrReuse(reg, m.errors); err != nil {
		return nil, err
	}
	if m.freshness, err = registerOrReuse(reg, m.freshness); err != nil {
		return nil, err
	}
	return m, nil
}

// registerOrReuse registers c, or returns the identical collector registered before.
func registerOrReuse[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if prev, ok := are.ExistingCollector.(C); ok {
			return prev, nil
		}
	}
	return c, err
}

func (m *stageMetrics) written(table string, rows int, took time.Duration) {
	if m == nil {
		return
	}
	m.rows.WithLabelValues(table).Add(float64(rows))
	m.flush.WithLabelValues(table).Observe(took.Seconds())
}

func (m *stageMetrics) failed(table, class string, n int) {
	if m != nil && n > 0 {
		m.errors.WithLabelValues(table, class).Add(float64(n))
	}
}

// newest records the newest ingest time committed for a partition of table.
func (m *stageMetrics) newest(s *Stage, table string, tp topicPartition, ts time.Time) {
	if m != nil && !ts.IsZero() {
		m.freshness.set(s, table, tp, ts)
	}
}

// forget drops a partition (revoked) or, with tp zero and all set, every partition of s.
func (m *stageMetrics) forget(s *Stage, tp topicPartition, all bool) {
	if m != nil {
		m.freshness.forget(s, tp, all)
	}
}

// freshness is the collector of sluice_sink_freshness_seconds: per table, the clock
// minus the newest ingest time committed on any partition a running stage owns. It is
// computed at scrape time so that a stalled sink shows a growing value; partitions
// that moved to another instance stop counting here.
type freshness struct {
	desc *prometheus.Desc

	mu     sync.Mutex
	newest map[*Stage]map[string]map[topicPartition]time.Time // stage -> table -> partition
	nows   map[*Stage]func() time.Time
}

func (f *freshness) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

func (f *freshness) Collect(ch chan<- prometheus.Metric) {
	f.mu.Lock()
	age := map[string]float64{}
	for s, tables := range f.newest {
		now := f.nows[s]()
		for table, parts := range tables {
			var newest time.Time
			for _, ts := range parts {
				if ts.After(newest) {
					newest = ts
				}
			}
			if newest.IsZero() {
				continue
			}
			a := now.Sub(newest).Seconds()
			if prev, ok := age[table]; !ok || a < prev {
				age[table] = a
			}
		}
	}
	f.mu.Unlock()
	for table, a := range age {
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, a, table)
	}
}

func (f *freshness) set(s *Stage, table string, tp topicPartition, ts time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tables := f.newest[s]
	if tables == nil {
		tables = map[string]map[topicPartition]time.Time{}
		f.newest[s] = tables
		f.nows[s] = s.cfg.Now
	}
	parts := tables[table]
	if parts == nil {
		parts = map[topicPartition]time.Time{}
		tables[table] = parts
	}
	if ts.After(parts[tp]) {
		parts[tp] = ts
	}
}

func (f *freshness) forget(s *Stage, tp topicPartition, all bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if all {
		delete(f.newest, s)
		delete(f.nows, s)
		return
	}
	for _, parts := range f.newest[s] {
		delete(parts, tp)
	}
}
