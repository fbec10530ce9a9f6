package process

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
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

	restores       *prometheus.CounterVec
	restoredByMode *prometheus.CounterVec
	diskBytes      *prometheus.GaugeVec
	cacheBytes     *prometheus.GaugeVec
	expiryBacklog  *prometheus.GaugeVec
	largestExpiry  *prometheus.GaugeVec

	watermark     *prometheus.GaugeVec
	streamTime    *prometheus.GaugeVec
	streamLag     *prometheus.GaugeVec
	openWindows   *prometheus.GaugeVec
	lateEvents    *prometheus.CounterVec
	windowResults *prometheus.CounterVec

	open *openTxns

	sessionsReplaced *prometheus.CounterVec

	retries      *prometheus.CounterVec
	redelivered  *prometheus.CounterVec
	holds        *prometheus.CounterVec
	breakerState *prometheus.GaugeVec
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
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_watermark_seconds", Help: "Watermark (largest event time) of each source partition, as seen by each aggregate task.",
		}, []string{"aggregation", "partition", "source"}),
		streamTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_stream_time_seconds", Help: "Stream time of an aggregate task: the minimum of its sources' watermarks.",
		}, []string{"aggregation", "partition"}),
		streamLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_stream_time_lag_seconds", Help: "Wall clock minus an aggregate task's stream time.",
		}, []string{"aggregation", "partition"}),
		openWindows: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_open_windows", Help: "Open windows in an aggregate task's state.",
		}, []string{"aggregation", "partition"}),
		lateEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_late_events_total", Help: "Events that arrived after all their windows closed, by aggregation.",
		}, []string{"aggregation"}),
		windowResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_window_results_total", Help: "Window results emitted, by aggregation.",
		}, []string{"aggregation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_retries_total", Help: "Records sent to a delay-tier retry topic after a transient failure, by source topic and tier.",
		}, []string{"stage", "topic", "tier"}),
		redelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_retry_redeliveries_total", Help: "Records the retry stage delivered back to their original topic, by tier topic.",
		}, []string{"tier"}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_stage_partition_holds_total", Help: "Times a stage paused a partition on a record that must wait (not-before time, open circuit, ordered retry).",
		}, []string{"stage", "reason"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_circuit_breaker_state", Help: "Circuit breaker state per stage and dependency: 0 closed, 1 half-open, 2 open.",
		}, []string{"stage", "dependency"}),
	}
	storeLabels := []string{"stage", "store", "topic", "partition"}
	m.restores = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_state_restores_total",
		Help: "Store restores on task start, by mode: tail (only the changelog after the local checkpoint) or full (wiped, whole changelog).",
	}, []string{"stage", "mode"})
	m.restoredByMode = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_state_restored_records_by_mode_total",
		Help: "Changelog records applied during restores, by mode (tail after a local checkpoint, or full).",
	}, []string{"stage", "mode"})
	m.diskBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_state_disk_bytes", Help: "Disk space a task's state store on disk takes.",
	}, storeLabels)
	m.cacheBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_state_cache_bytes", Help: "Block cache in use by a task's state store on disk (a shared cache counts once per store).",
	}, storeLabels)
	m.expiryBacklog = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_state_expiry_backlog", Help: "Keys of a store past their expiry whose tombstones are not committed yet.",
	}, storeLabels)
	m.largestExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_state_largest_tombstone_batch", Help: "Most expiry tombstones (dedup ids; for a windows store, closed windows) one transaction of a task carried (since the task started).",
	}, storeLabels)
	m.sessionsReplaced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_stage_sessions_replaced_total",
		Help: "Kafka sessions a stage replaced because a transaction could not end (a lost group membership, an unanswered EndTxn): its tasks were restored from their changelogs.",
	}, []string{"stage"})
	reg.MustRegister(m.sessionsReplaced)
	reg.MustRegister(m.restores, m.restoredByMode, m.diskBytes, m.cacheBytes, m.expiryBacklog, m.largestExpiry)
	m.open = &openTxns{now: time.Now, begun: map[*Stage]openTxn{},
		desc: prometheus.NewDesc("sluice_transaction_open_seconds",
			"Age of the transaction each stage has open now (0 between transactions): a stuck stage keeps it growing.",
			[]string{"stage"}, nil)}
	reg.MustRegister(m.retries, m.redelivered, m.holds, m.breakerState, m.open)
	reg.MustRegister(m.watermark, m.streamTime, m.streamLag, m.openWindows, m.lateEvents, m.windowResults)
	reg.MustRegister(m.recordsIn, m.recordsOut, m.txns, m.txnDuration, m.restoreDur, m.restored,
		m.duplicates, m.deadLetters, m.endToEnd, m.dedupStateLen)
	return m
}

func (m *Metrics) in(stage, topic string, n int) {
	if m != nil {
		m.recordsIn.WithLabelValues(stage, topic).Add(float64(n))
	}
}

// outCounter is the records-out counter of stage and topic; m must not be nil.
func (m *Metrics) outCounter(stage, topic string) prometheus.Counter {
	return m.recordsOut.WithLabelValues(stage, topic)
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

func (m *Metrics) sessionReplaced(stage string) {
	if m != nil {
		m.sessionsReplaced.WithLabelValues(stage).Inc()
	}
}

func (m *Metrics) restoredTask(stage string, d time.Duration, n int) {
	if m == nil {
		return
	}
	m.restoreDur.WithLabelValues(stage).Observe(d.Seconds())
	m.restored.WithLabelValues(stage).Add(float64(n))
}

// restoredStore counts one store's restore and its records, by mode.
func (m *Metrics) restoredStore(stage string, tail bool, n int) {
	if m == nil {
		return
	}
	mode, other := "full", "tail"
	if tail {
		mode, other = other, mode
	}
	m.restores.WithLabelValues(stage, mode).Inc()
	m.restoredByMode.WithLabelValues(stage, mode).Add(float64(n))
	// Both modes exist from the first restore on, so a rate over either is defined.
	m.restores.WithLabelValues(stage, other)
	m.restoredByMode.WithLabelValues(stage, other)
}

// storeState publishes a store's size, and on disk its disk and cache use.
func (m *Metrics) storeState(stage string, id TaskID, st Changelogged) {
	if m == nil {
		return
	}
	p := strconv.Itoa(int(id.Partition))
	m.dedupStateLen.WithLabelValues(stage, st.Name(), id.Topic, p).Set(float64(st.Len()))
	if ss, ok := st.(interface {
		Stats() (stream.BackendStats, bool)
	}); ok {
		if bs, ok := ss.Stats(); ok {
			m.diskBytes.WithLabelValues(stage, st.Name(), id.Topic, p).Set(float64(bs.DiskBytes))
			m.cacheBytes.WithLabelValues(stage, st.Name(), id.Topic, p).Set(float64(bs.CacheBytes))
		}
	}
}

// expiry publishes a store's expiry backlog and its largest tombstone batch.
func (m *Metrics) expiry(stage string, id TaskID, store string, backlog, largest int) {
	if m == nil {
		return
	}
	p := strconv.Itoa(int(id.Partition))
	m.expiryBacklog.WithLabelValues(stage, store, id.Topic, p).Set(float64(backlog))
	m.largestExpiry.WithLabelValues(stage, store, id.Topic, p).Set(float64(largest))
}

// largestBatch publishes the most tombstones one transaction of a task's store carried
// (the windows store: closed windows), for a store without an expiry backlog to report.
func (m *Metrics) largestBatch(stage string, id TaskID, store string, largest int) {
	if m == nil {
		return
	}
	m.largestExpiry.WithLabelValues(stage, store, id.Topic, strconv.Itoa(int(id.Partition))).Set(float64(largest))
}

// InitPipeline creates at 0 every label set of the counters whose label values pipeline
// p names: its stages' transactions, its topics' duplicates, dead letters and retries,
// its aggregations' late events and window results, and its retry tiers' redeliveries.
// A counter absent until its first event breaks rate() and absence alerts
// (docs/DESIGN.md#metrics). aggs says whether the aggregation stages run.
func (m *Metrics) InitPipeline(p *config.Pipeline, aggs bool) {
	if m == nil || p == nil {
		return
	}
	stages := []string{wire.StageClean}
	if len(p.RetryTiers) > 0 {
		stages = append(stages, wire.StageRetry)
	}
	for _, t := range p.Topics {
		m.duplicates.WithLabelValues(t.Name)
		for _, c := range []dlq.Class{dlq.Permanent, dlq.Transient} {
			m.deadLetters.WithLabelValues(wire.StageClean, t.Name, string(c))
		}
		for _, d := range p.RetryTiers {
			m.retries.WithLabelValues(wire.StageClean, t.Name, wire.RetryTopic(d.D()))
		}
	}
	for _, d := range p.RetryTiers {
		m.redelivered.WithLabelValues(wire.RetryTopic(d.D()))
	}
	if aggs {
		for _, a := range p.Aggregations {
			m.lateEvents.WithLabelValues(a.Name)
			m.windowResults.WithLabelValues(a.Name)
			stages = append(stages, wire.StageRepartition(a.Name), wire.StageAggregate(a.Name))
		}
	}
	for _, s := range stages {
		m.txns.WithLabelValues(s, "commit")
		m.txns.WithLabelValues(s, "abort")
		m.sessionsReplaced.WithLabelValues(s)
	}
}

func (m *Metrics) lateEvent(agg string) {
	if m != nil {
		m.lateEvents.WithLabelValues(agg).Inc()
	}
}

func (m *Metrics) result(agg string, ingestTS int64, now time.Time) {
	if m == nil {
		return
	}
	m.windowResults.WithLabelValues(agg).Inc()
	if ingestTS > 0 {
		m.endToEnd.WithLabelValues("agg", agg).Observe(float64(now.UnixMicro()-ingestTS) / 1e6)
	}
}

// aggregateState publishes an aggregate task's watermarks, stream time and window count.
func (m *Metrics) aggregateState(agg string, partition int32, eng interface {
	StreamTime() int64
	Watermark(string) int64
	OpenWindows() int
}, sources []string, now time.Time) {
	if m == nil {
		return
	}
	p := strconv.Itoa(int(partition))
	for _, s := range sources {
		if wm := eng.Watermark(s); wm != math.MinInt64 {
			m.watermark.WithLabelValues(agg, p, s).Set(float64(wm) / 1e3)
		}
	}
	if st := eng.StreamTime(); st != math.MinInt64 {
		m.streamTime.WithLabelValues(agg, p).Set(float64(st) / 1e3)
		m.streamLag.WithLabelValues(agg, p).Set(float64(now.UnixMilli()-st) / 1e3)
	}
	m.openWindows.WithLabelValues(agg, p).Set(float64(eng.OpenWindows()))
}

// stateKeys publishes the committed size of a task's store.
func (m *Metrics) stateKeys(stage, store, topic string, partition int32, n int) {
	if m != nil {
		m.dedupStateLen.WithLabelValues(stage, store, topic, strconv.Itoa(int(partition))).Set(float64(n))
	}
}

func (m *Metrics) held(stage, reason string) {
	if m != nil {
		m.holds.WithLabelValues(stage, reason).Inc()
	}
}

// breakers publishes the state of every circuit breaker of a stage.
func (m *Metrics) breakers(stage string, states map[string]string) {
	if m == nil {
		return
	}
	for dep, st := range states {
		v := 0.0
		switch st {
		case dlq.BreakerHalfOpen:
			v = 1
		case dlq.BreakerOpen:
			v = 2
		}
		m.breakerState.WithLabelValues(stage, dep).Set(v)
	}
}

// openTxns is a collector of the age of every stage's open transaction, computed at
// scrape time so that a stage stuck inside one shows a growing value.
type openTxns struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu    sync.Mutex
	begun map[*Stage]openTxn
}

type openTxn struct {
	stage string
	at    time.Time // zero: none open
}

func (o *openTxns) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o *openTxns) Collect(ch chan<- prometheus.Metric) {
	o.mu.Lock()
	age := map[string]float64{}
	now := o.now()
	for _, t := range o.begun {
		a := 0.0
		if !t.at.IsZero() {
			a = now.Sub(t.at).Seconds()
		}
		age[t.stage] = max(age[t.stage], a)
	}
	o.mu.Unlock()
	for stage, a := range age {
		ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, a, stage)
	}
}

// txnOpen records that s began a transaction (on the wall clock: the gauge is read at
// scrape time against the real clock).
func (m *Metrics) txnOpen(s *Stage, _ time.Time) {
	if m == nil {
		return
	}
	m.open.mu.Lock()
	m.open.begun[s] = openTxn{stage: s.cfg.Name, at: m.open.now()}
	m.open.mu.Unlock()
}

// txnClosed records that s ended its transaction.
func (m *Metrics) txnClosed(s *Stage) {
	if m == nil {
		return
	}
	m.open.mu.Lock()
	m.open.begun[s] = openTxn{stage: s.cfg.Name}
	m.open.mu.Unlock()
}

// ObserveEndToEnd records d, the time from ingest until an output of stage committed, in
// sluice_end_to_end_latency_seconds{stage,topic}. The warehouse sink, which has no
// Metrics of its own for this histogram, reports through it (stage "sink").
func (m *Metrics) ObserveEndToEnd(stage, topic string, d time.Duration) {
	if m != nil {
		m.endToEnd.WithLabelValues(stage, topic).Observe(d.Seconds())
	}
}
