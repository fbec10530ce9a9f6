package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// defaultMonitorEvery is how often Run refreshes when given a non-positive interval.
const defaultMonitorEvery = 30 * time.Second

// MonitorConfig says what a Monitor watches and how to reach it.
type MonitorConfig struct {
	// Opts reach the brokers (seed brokers, client id, TLS...). The monitor builds its own
	// client from them, adding read_committed isolation; they must not configure
	// consuming (no group, no consume topics).
	Opts []kgo.Opt
	// DLQTopics are the dead-letter topics to watch, e.g. purchases.dlq and
	// _sluice.retry.dlq. Each gets sluice_dead_letter_depth and
	// sluice_dead_letter_oldest_age_seconds.
	DLQTopics []string
	// RetryTopics are the delay-tier retry topics, e.g. _sluice.retry.5s. Each gets
	// sluice_retry_depth.
	RetryTopics []string
	// RetryGroup is the consumer group that reads RetryTopics ("sluice.retry"). Empty: no
	// group, every record from the log start counts as waiting.
	RetryGroup string
	// Now is the clock the oldest age is measured with. Nil: time.Now.
	Now func() time.Time
}

// Monitor keeps Prometheus gauges of how many dead letters and retries are waiting:
//
//   - sluice_dead_letter_depth{topic}: the dead letters in a dead-letter topic, exactly: the
//     records a read_committed consumer sees between the log start and the last stable
//     offset. Transaction markers and aborted records take offsets, so the difference of
//     offsets would overcount; the monitor reads the records instead, incrementally: it
//     keeps a cursor per partition and each Refresh reads only the records added since.
//     When the log start moves past where a partition's count began (retention,
//     DeleteRecords), that partition is recounted from its new start.
//   - sluice_dead_letter_oldest_age_seconds{topic}: now minus the first failure
//     (sluice-first-failure-ts, else the record timestamp) of the oldest dead letter still
//     in the topic; 0 when the topic is empty.
//   - sluice_retry_depth{topic}: records waiting in a retry topic: the sum over partitions
//     of the end offset minus RetryGroup's committed offset (the log start when none is
//     committed or it is below the start). It is computed from offsets, so it is
//     approximate: transaction markers and aborted records count as waiting.
//   - sluice_dead_letter_monitor_errors_total: failed Refreshes.
//
// A topic that does not exist yet reads 0. Gauges keep their last value while a Refresh
// fails. A Monitor's methods may be called from several goroutines; Refreshes serialize.
type Monitor struct {
	now         func() time.Time
	dlqTopics   []string
	retryTopics []string
	retryGroup  string

	cl  *kgo.Client
	adm *kadm.Client

	depth      *prometheus.GaugeVec
	oldestAge  *prometheus.GaugeVec
	retryDepth *prometheus.GaugeVec
	errs       prometheus.Counter

	mu    sync.Mutex                         // serializes Refresh; guards parts
	parts map[string]map[int32]*dlqPartition // dead-letter topic -> partition -> count
}

// dlqPartition is the running count of one dead-letter partition.
type dlqPartition struct {
	base   int64     // log start offset when counting began
	next   int64     // offset of the next record to read
	count  int64     // data records in [base, next)
	oldest time.Time // earliest first failure among them; zero when count is 0
}

// NewMonitor builds a Monitor for cfg and registers its metrics on reg (nil: none). The
// gauges of every configured topic start at 0; call Refresh or Run to fill them, and
// Close when done.
func NewMonitor(cfg MonitorConfig, reg prometheus.Registerer) (*Monitor, error) {
	dlqTopics, err := topicSet("dlq topics", cfg.DLQTopics)
	if err != nil {
		return nil, err
	}
	retryTopics, err := topicSet("retry topics", cfg.RetryTopics)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	m := &Monitor{
		now:         now,
		dlqTopics:   dlqTopics,
		retryTopics: retryTopics,
		retryGroup:  cfg.RetryGroup,
		parts:       map[string]map[int32]*dlqPartition{},
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_dead_letter_depth", Help: "Dead letters in a dead-letter topic (committed records between log start and end).",
		}, []string{"topic"}),
		oldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_dead_letter_oldest_age_seconds", Help: "Age of the oldest first failure still in a dead-letter topic; 0 when empty.",
		}, []string{"topic"}),
		retryDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_retry_depth", Help: "Records waiting in a retry topic: end offset minus the retry group's committed offset (approximate: counts transaction markers).",
		}, []string{"topic"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_dead_letter_monitor_errors_total", Help: "Refreshes of the dead-letter and retry gauges that failed.",
		}),
	}
	for _, t := range dlqTopics {
		m.depth.WithLabelValues(t).Set(0)
		m.oldestAge.WithLabelValues(t).Set(0)
	}
	for _, t := range retryTopics {
		m.retryDepth.WithLabelValues(t).Set(0)
	}
	opts := append(slices.Clone(cfg.Opts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers take offsets too: seeing them is how a read reaches the end offset.
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("dlq monitor: client: %w", err)
	}
	m.cl = cl
	m.adm = kadm.NewClient(cl)
	if reg != nil {
		cs := []prometheus.Collector{m.depth, m.oldestAge, m.retryDepth, m.errs}
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				for _, done := range cs[:i] {
					reg.Unregister(done)
				}
				cl.Close()
				return nil, fmt.Errorf("dlq monitor: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// topicSet returns topics without duplicates, in order, failing on an empty name.
func topicSet(what string, topics []string) ([]string, error) {
	var out []string
	for i, t := range topics {
		if t == "" {
			return nil, fmt.Errorf("dlq monitor: %s[%d]: must not be empty", what, i)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// Run refreshes the gauges now and then every `every` (30s when not positive) until ctx
// ends. A failed Refresh counts in sluice_dead_letter_monitor_errors_total; each Refresh
// is bounded by the interval, and progress made by a cut-short one is kept.
func (m *Monitor) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = defaultMonitorEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		_ = m.Refresh(rctx) // counted in errs; Run logs nothing
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh updates every gauge once: it lists offsets, reads the dead letters added since
// the last Refresh and fetches RetryGroup's committed offsets. On error the gauges keep
// their previous values (a dead-letter topic's gauges are only set once it is read to
// its end) and sluice_dead_letter_monitor_errors_total counts one.
func (m *Monitor) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := errors.Join(m.refreshDeadLetters(ctx), m.refreshRetries(ctx))
	if err != nil {
		m.errs.Inc()
	}
	return err
}

// Close releases the monitor's client. The registered metrics stay registered.
func (m *Monitor) Close() {
	m.cl.Close()
}

// refreshDeadLetters brings the dead-letter counts up to the last stable offsets listed now.
func (m *Monitor) refreshDeadLetters(ctx context.Context) error {
	if len(m.dlqTopics) == 0 {
		return nil
	}
	starts, err := m.listOffsets(ctx, "start", m.adm.ListStartOffsets, m.dlqTopics)
	if err != nil {
		return err
	}
	// read_committed reads end at the last stable offset: past it sit open transactions.
	ends, err := m.listOffsets(ctx, "end", m.adm.ListCommittedOffsets, m.dlqTopics)
	if err != nil {
		return err
	}
	ends = inStarts(ends, starts)
	var todo []pending
	for _, t := range m.dlqTopics {
		ps := m.parts[t]
		if ps == nil {
			ps = map[int32]*dlqPartition{}
			m.parts[t] = ps
		}
		for p := range ps {
			if _, ok := ends[t][p]; !ok {
				delete(ps, p) // the topic or partition is gone
			}
		}
		for p, end := range ends[t] {
			start := starts[t][p]
			st := ps[p]
			// Records we counted were deleted, or the log was recreated shorter: recount.
			if st == nil || start > st.base || end < st.next {
				st = &dlqPartition{base: start, next: start}
				ps[p] = st
			}
			if st.next < end {
				todo = append(todo, pending{topic: t, partition: p, end: end, st: st})
			}
		}
	}
	if err := m.read(ctx, todo); err != nil {
		return err
	}
	now := m.now()
	for _, t := range m.dlqTopics {
		var count int64
		var oldest time.Time
		for _, st := range m.parts[t] {
			count += st.count
			if st.count > 0 && (oldest.IsZero() || st.oldest.Before(oldest)) {
				oldest = st.oldest
			}
		}
		age := 0.0
		if count > 0 {
			age = max(now.Sub(oldest).Seconds(), 0)
		}
		m.depth.WithLabelValues(t).Set(float64(count))
		m.oldestAge.WithLabelValues(t).Set(age)
	}
	return nil
}

// pending is a dead-letter partition to read up to end.
type pending struct {
	topic     string
	partition int32
	end       int64
	st        *dlqPartition
}

type topicPartition struct {
	topic     string
	partition int32
}

// read consumes every pending partition from its cursor up to its end offset, counting
// data records. Partitions are added to the client for the read and removed after, which
// drops whatever the client fetched beyond the ends.
func (m *Monitor) read(ctx context.Context, todo []pending) error {
	if len(todo) == 0 {
		return nil
	}
	want := make(map[topicPartition]*pending, len(todo))
	add := map[string]map[int32]kgo.Offset{}
	remove := map[string][]int32{}
	for i := range todo {
		w := &todo[i]
		want[topicPartition{w.topic, w.partition}] = w
		if add[w.topic] == nil {
			add[w.topic] = map[int32]kgo.Offset{}
		}
		add[w.topic][w.partition] = kgo.NewOffset().At(w.st.next)
		remove[w.topic] = append(remove[w.topic], w.partition)
	}
	m.cl.AddConsumePartitions(add)
	defer m.cl.RemoveConsumePartitions(remove)
	left := len(todo)
	for left > 0 {
		fs := m.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dlq monitor: read dead letters: %d partitions left: %w", left, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("dlq monitor: read %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return ferr
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			w := want[topicPartition{fp.Topic, fp.Partition}]
			if w == nil {
				return
			}
			wasLeft := w.st.next < w.end
			for _, r := range fp.Records {
				w.st.add(r, w.end)
			}
			if wasLeft && w.st.next >= w.end {
				left--
			}
		})
	}
	return nil
}

// add counts r if it is a data record below end that was not counted yet. A record at
// or past end means every record below end was seen: aborted records are never
// delivered, and their abort marker may lie past end while a later transaction is open.
func (st *dlqPartition) add(r *kgo.Record, end int64) {
	switch {
	case r.Offset < st.next:
		return
	case r.Offset >= end:
		st.next = max(st.next, end)
		return
	}
	st.next = r.Offset + 1
	if r.Attrs.IsControl() {
		return
	}
	at, ok := wire.FirstFailure(r)
	if !ok {
		at = r.Timestamp
	}
	if st.count == 0 || at.Before(st.oldest) {
		st.oldest = at
	}
	st.count++
}

// refreshRetries sets the retry depth of every retry topic.
func (m *Monitor) refreshRetries(ctx context.Context) error {
	if len(m.retryTopics) == 0 {
		return nil
	}
	starts, err := m.listOffsets(ctx, "start", m.adm.ListStartOffsets, m.retryTopics)
	if err != nil {
		return err
	}
	ends, err := m.listOffsets(ctx, "end", m.adm.ListEndOffsets, m.retryTopics)
	if err != nil {
		return err
	}
	var committed kadm.OffsetResponses
	if m.retryGroup != "" {
		committed, err = m.adm.FetchOffsets(ctx, m.retryGroup)
		if errors.Is(err, kerr.GroupIDNotFound) {
			committed, err = nil, nil
		}
		if err == nil {
			err = committed.Error()
		}
		if err != nil {
			return fmt.Errorf("dlq monitor: committed offsets of %s: %w", m.retryGroup, err)
		}
	}
	for _, t := range m.retryTopics {
		var depth int64
		for p, end := range ends[t] {
			from := starts[t][p]
			if o, ok := committed.Lookup(t, p); ok && o.At > from {
				from = o.At
			}
			depth += max(end-from, 0)
		}
		m.retryDepth.WithLabelValues(t).Set(float64(depth))
	}
	return nil
}

// listOffsets lists offsets of topics with list, by topic and partition. A topic that
// does not exist is left out.
func (m *Monitor) listOffsets(ctx context.Context, what string, list func(context.Context, ...string) (kadm.ListedOffsets, error), topics []string) (map[string]map[int32]int64, error) {
	los, err := list(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("dlq monitor: list %s offsets: %w", what, err)
	}
	out := map[string]map[int32]int64{}
	var errs error
	los.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			errs = errors.Join(errs, fmt.Errorf("dlq monitor: list %s offset of %s/%d: %w", what, o.Topic, o.Partition, o.Err))
		default:
			if out[o.Topic] == nil {
				out[o.Topic] = map[int32]int64{}
			}
			out[o.Topic][o.Partition] = o.Offset
		}
	})
	return out, errs
}

// inStarts keeps the partitions of ends that also have a start offset, so a partition
// created between the two listings waits for the next Refresh.
func inStarts(ends, starts map[string]map[int32]int64) map[string]map[int32]int64 {
	for t, ps := range ends {
		for p := range ps {
			if _, ok := starts[t][p]; !ok {
				delete(ps, p)
			}
		}
	}
	return ends
}
