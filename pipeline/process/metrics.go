package process

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the processor's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	recordsIn     *prometheus.CounterVec
	recordsOut    *prometheus.CounterVec
	txns          *prometheus.CounterVec
	txnDuration   *prometheus.HistogramVec
	restoreDur    *prometheus.HistogramVec
	restored      *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	endToEnd      *prometheus.HistogramVec
	dedupStateLen *prometheus.GaugeVec
}

// NewMetrics registers the processor metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		recordsIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_stage_records_in_total", Help: "Records consumed by a stage.",
		}, []string{"stage", "topic"}),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_stage_records_out_total", Help: "Records produced by a stage (outputs, dead letters, changelog).",
		}, []string{"stage", "topic"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_stage_transactions_total", Help: "Transactions ended by a stage, by result.",
		}, []string{"stage", "result"}),
		txnDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_stage_transaction_duration_seconds", Help: "Time from a batch's begin to its transaction's end.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"stage"}),
		restoreDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_state_restore_duration_seconds", Help: "Time to restore a task's state stores from their changelogs.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"stage"}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_state_restored_records_total", Help: "Changelog records applied during restores.",
		}, []string{"stage"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_clean_duplicates_total", Help: "Events dropped by the clean stage as duplicates of an event id.",
		}, []string{"topic"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_dead_letters_total", Help: "Records sent to a dead-letter topic, by source topic and error class.",
		}, []string{"stage", "topic", "class"}),
		endToEnd: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_end_to_end_latency_seconds", Help: "Time from ingest (sluice-ingest-ts) until the output committed.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"stage", "topic"}),
		dedupStateLen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_state_keys", Help: "Committed keys in a task's state store.",
		}, []string{"stage", "store", "topic", "partition"}),
	}
	reg.MustRegister(m.recordsIn, m.recordsOut, m.txns, m.txnDuration, m.restoreDur, m.restored,
		m.duplicates, m.deadLetters, m.endToEnd, m.dedupStateLen)
	return m
}

func (m *Metrics) in(stage, topic string, n int) {
	if m != nil {
		m.recordsIn.WithLabelValues(stage, topic).Add(float64(n))
	}
}

func (m *Metrics) out(stage, topic string) {
	if m != nil {
		m.recordsOut.WithLabelValues(stage, topic).Inc()
	}
}

func (m *Metrics) txn(stage string, committed bool, d time.Duration) {
	if m == nil {
		return
	}
	res := "commit"
	if !committed {
		res = "abort"
	}
	m.txns.WithLabelValues(stage, res).Inc()
	m.txnDuration.WithLabelValues(stage).Observe(d.Seconds())
}

func (m *Metrics) restoredTask(stage string, d time.Duration, n int) {
	if m == nil {
		return
	}
	m.restoreDur.WithLabelValues(stage).Observe(d.Seconds())
	m.restored.WithLabelValues(stage).Add(float64(n))
}
