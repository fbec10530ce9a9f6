package dlq_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
)

var monitorT0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// monitorClock is a manually advanced clock; onNow, if set, runs on every reading.
type monitorClock struct {
	t     time.Time
	onNow func()
}

func (c *monitorClock) now() time.Time {
	if c.onNow != nil {
		c.onNow()
	}
	return c.t
}

// monitorCluster starts a one-broker kfake cluster with topics of two partitions and
// returns the options reaching it and an admin client, both closed when the test ends.
func monitorCluster(t *testing.T, topics ...string) ([]kgo.Opt, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(2, topics...))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return opts, kadm.NewClient(cl)
}

// newTxnProducer returns a transactional producer that writes to each record's partition.
func newTxnProducer(t *testing.T, opts []kgo.Opt, id string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(opts,
		kgo.TransactionalID(id),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceTxn writes recs in one transaction, committed or aborted.
func produceTxn(t *testing.T, cl *kgo.Client, commit bool, recs ...*kgo.Record) {
	t.Helper()
	ctx := t.Context()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	if err := cl.EndTransaction(ctx, end); err != nil {
		t.Fatal(err)
	}
}

// deadAt is a dead letter for partition p of purchases.dlq that first failed at ff; its
// record timestamp is monitorT0, so an age read from the timestamp would be wrong.
func deadAt(p int32, ff time.Time) *kgo.Record {
	src := &kgo.Record{Topic: "purchases", Partition: p, Offset: 1, Value: []byte("v"), Timestamp: monitorT0}
	return dlq.Record(src, "purchases.dlq", dlq.Letter{Stage: "clean", Class: dlq.Permanent, Err: errors.New("bad"), Attempts: 1, FirstFailure: ff})
}

// metric returns the value of the gauge or counter name{topic}, failing if it is absent.
func metric(t *testing.T, g prometheus.Gatherer, name, topic string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var lt string
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" {
					lt = l.GetValue()
				}
			}
			if lt != topic {
				continue
			}
			if m.Gauge != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s{topic=%q} not found", name, topic)
	return 0
}

// fetchLog records the offsets the monitor's client fetches, per topic and partition.
type fetchLog struct {
	mu   sync.Mutex
	seen map[int32][]int64
}

func (f *fetchLog) OnFetchRecordBuffered(r *kgo.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[int32][]int64{}
	}
	f.seen[r.Partition] = append(f.seen[r.Partition], r.Offset)
}

func (f *fetchLog) take() map[int32][]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.seen
	f.seen = nil
	return s
}

var _ kgo.HookFetchRecordBuffered = (*fetchLog)(nil)

// endOffsets returns the offsets list gives for topic's partitions.
func endOffsets(t *testing.T, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) map[int32]int64 {
	t.Helper()
	los, err := list(t.Context(), topic)
	if err == nil {
		err = los.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	los.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// deleteTo moves the log start of topic/p to offset.
func deleteTo(t *testing.T, adm *kadm.Client, topic string, p int32, offset int64) {
	t.Helper()
	os := kadm.Offsets{}
	os.AddOffset(topic, p, offset, -1)
	resp, err := adm.DeleteRecords(t.Context(), os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records %s/%d to %d: %v", topic, p, offset, err)
	}
}

func TestMonitorDeadLetters(t *testing.T) {
	opts, adm := monitorCluster(t, "purchases.dlq", "clicks.dlq")
	prod := newTxnProducer(t, opts, "monitor-test")
	open := newTxnProducer(t, opts, "monitor-test-open")
	clock := &monitorClock{t: monitorT0}
	fetched := &fetchLog{}
	reg := prometheus.NewRegistry()
	m, err := dlq.NewMonitor(dlq.MonitorConfig{
		Opts:      append(opts, kgo.WithHooks(fetched)),
		DLQTopics: []string{"purchases.dlq", "clicks.dlq", "page_views.dlq"},
		Now:       clock.now,
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	minute := time.Minute
	noHeader := &kgo.Record{Topic: "purchases.dlq", Partition: 1, Value: []byte("raw"), Timestamp: monitorT0.Add(-30 * minute)}

	steps := []struct {
		name    string
		act     func(t *testing.T)
		advance time.Duration
		want    float64 // purchases.dlq depth
		wantAge float64 // purchases.dlq oldest age, seconds
		recount int32   // a partition recounted from its new log start, or -1
	}{
		{"empty topic", func(*testing.T) {}, 0, 0, 0, -1},
		{"committed, aborted, committed", func(t *testing.T) {
			produceTxn(t, prod, true, deadAt(0, monitorT0.Add(-10*minute)), deadAt(1, monitorT0.Add(-5*minute)))
			// Aborted and older than anything: counts neither in depth nor in age. Partition
			// 0 ends with its abort marker.
			produceTxn(t, prod, false, deadAt(0, monitorT0.Add(-time.Hour)), deadAt(0, monitorT0.Add(-time.Hour)))
			// No first-failure header: the record timestamp counts.
			produceTxn(t, prod, true, noHeader)
		}, 0, 3, 30 * 60, -1},
		{"nothing new, clock moves", func(*testing.T) {}, minute, 3, 31 * 60, -1},
		{"more dead letters", func(t *testing.T) {
			produceTxn(t, prod, true, deadAt(0, monitorT0.Add(-2*time.Hour)), deadAt(1, monitorT0))
			produceTxn(t, prod, false, deadAt(1, monitorT0.Add(-3*time.Hour)))
		}, 0, 5, 2*60*60 + 60, -1},
		{"retention drops partition 0", func(t *testing.T) {
			deleteTo(t, adm, "purchases.dlq", 0, endOffsets(t, adm.ListEndOffsets, "purchases.dlq")[0])
		}, 0, 3, 31 * 60, -1}, // the new log start is the old end
		{"new dead letter after retention", func(t *testing.T) {
			produceTxn(t, prod, true, deadAt(0, monitorT0.Add(-40*minute)))
		}, 0, 4, 41 * 60, -1},
		{"retention drops the oldest of partition 1", func(t *testing.T) {
			// Partition 1: txn1 record @0, marker @1, noHeader @2, marker @3, ...
			deleteTo(t, adm, "purchases.dlq", 1, 3)
		}, 0, 2, 41 * 60, 1},
		{"open transaction is not counted", func(t *testing.T) {
			// The read ends at the last stable offset, before the open transaction.
			if err := open.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := open.ProduceSync(t.Context(), deadAt(1, monitorT0.Add(-5*time.Hour))).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}, 0, 2, 41 * 60, -1},
		{"open transaction committed", func(t *testing.T) {
			if err := open.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
		}, 0, 3, 5*60*60 + 60, -1},
	}
	var prevEnds map[int32]int64
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.act(t)
			clock.t = clock.t.Add(s.advance)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := m.Refresh(ctx); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if got := metric(t, reg, "sluice_dead_letter_depth", "purchases.dlq"); got != s.want {
				t.Errorf("depth = %v, want %v", got, s.want)
			}
			if got := metric(t, reg, "sluice_dead_letter_oldest_age_seconds", "purchases.dlq"); got != s.wantAge {
				t.Errorf("oldest age = %v, want %v", got, s.wantAge)
			}
			for _, topic := range []string{"clicks.dlq", "page_views.dlq"} {
				if got := metric(t, reg, "sluice_dead_letter_depth", topic); got != 0 {
					t.Errorf("%s depth = %v, want 0", topic, got)
				}
				if got := metric(t, reg, "sluice_dead_letter_oldest_age_seconds", topic); got != 0 {
					t.Errorf("%s oldest age = %v, want 0", topic, got)
				}
			}
			// Incremental: a Refresh fetches only what was added since the last one, or
			// for a recounted partition what is left from its new log start.
			for p, offs := range fetched.take() {
				floor := prevEnds[p]
				if p == s.recount {
					floor = 3
				}
				for _, o := range offs {
					if o < floor {
						t.Errorf("partition %d: fetched offset %d, want >= %d", p, o, floor)
					}
				}
			}
			// A Refresh reads up to the last stable offset.
			prevEnds = endOffsets(t, adm.ListCommittedOffsets, "purchases.dlq")
		})
	}
	if got := metric(t, reg, "sluice_dead_letter_monitor_errors_total", ""); got != 0 {
		t.Errorf("errors = %v, want 0", got)
	}
}

func TestMonitorRetryDepth(t *testing.T) {
	const topic, group = "_sluice.retry.5s", "sluice.retry"
	opts, adm := monitorCluster(t, topic)
	reg := prometheus.NewRegistry()
	m, err := dlq.NewMonitor(dlq.MonitorConfig{
		Opts:        opts,
		RetryTopics: []string{topic, "_sluice.retry.1m"},
		RetryGroup:  group,
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	prod, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	produce := func(t *testing.T, p int32, n int) {
		t.Helper()
		for range n {
			if err := prod.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Partition: p, Value: []byte("r")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit := func(t *testing.T, p int32, at int64) {
		t.Helper()
		os := kadm.Offsets{}
		os.AddOffset(topic, p, at, -1)
		resp, err := adm.CommitOffsets(t.Context(), group, os)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		act  func(t *testing.T)
		want float64
	}{
		{"empty, no group", func(*testing.T) {}, 0},
		{"records, nothing committed", func(t *testing.T) { produce(t, 0, 5); produce(t, 1, 3) }, 8},
		{"group committed partition 0", func(t *testing.T) { commit(t, 0, 2) }, 6},
		{"log start past nothing committed", func(t *testing.T) { deleteTo(t, adm, topic, 1, 1) }, 5},
		{"log start past the commit", func(t *testing.T) { deleteTo(t, adm, topic, 0, 4) }, 3},
		{"all consumed", func(t *testing.T) { commit(t, 0, 5); commit(t, 1, 3) }, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.act(t)
			if err := m.Refresh(t.Context()); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if got := metric(t, reg, "sluice_retry_depth", topic); got != s.want {
				t.Errorf("retry depth = %v, want %v", got, s.want)
			}
			if got := metric(t, reg, "sluice_retry_depth", "_sluice.retry.1m"); got != 0 {
				t.Errorf("missing topic's retry depth = %v, want 0", got)
			}
		})
	}
}

func TestMonitorNoTopicsExist(t *testing.T) {
	opts, _ := monitorCluster(t)
	reg := prometheus.NewRegistry()
	m, err := dlq.NewMonitor(dlq.MonitorConfig{
		Opts:        opts,
		DLQTopics:   []string{"purchases.dlq", "_sluice.retry.dlq"},
		RetryTopics: []string{"_sluice.retry.5s"},
		RetryGroup:  "sluice.retry",
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	if err := m.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	for _, c := range []struct{ name, topic string }{
		{"sluice_dead_letter_depth", "purchases.dlq"},
		{"sluice_dead_letter_depth", "_sluice.retry.dlq"},
		{"sluice_dead_letter_oldest_age_seconds", "purchases.dlq"},
		{"sluice_retry_depth", "_sluice.retry.5s"},
		{"sluice_dead_letter_monitor_errors_total", ""},
	} {
		if got := metric(t, reg, c.name, c.topic); got != 0 {
			t.Errorf("%s{topic=%q} = %v, want 0", c.name, c.topic, got)
		}
	}
}

func TestMonitorRun(t *testing.T) {
	opts, _ := monitorCluster(t, "purchases.dlq")
	produceTxn(t, newTxnProducer(t, opts, "monitor-test"), true, deadAt(0, monitorT0.Add(-time.Minute)))
	cases := []struct {
		name       string
		cancelled  bool // ctx is done before Run starts
		wantDepth  float64
		wantErrors float64
	}{
		// The first Refresh reads the clock once it has counted; the clock ends Run.
		{"refreshes at once, stops with ctx", false, 1, 0},
		{"cancelled before start", true, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if c.cancelled {
				cancel()
			}
			clock := &monitorClock{t: monitorT0, onNow: cancel}
			reg := prometheus.NewRegistry()
			m, err := dlq.NewMonitor(dlq.MonitorConfig{Opts: opts, DLQTopics: []string{"purchases.dlq"}, Now: clock.now}, reg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			m.Run(ctx, time.Hour) // returns only because ctx ends
			if got := metric(t, reg, "sluice_dead_letter_depth", "purchases.dlq"); got != c.wantDepth {
				t.Errorf("depth = %v, want %v", got, c.wantDepth)
			}
			if got := metric(t, reg, "sluice_dead_letter_monitor_errors_total", ""); got != c.wantErrors {
				t.Errorf("errors = %v, want %v", got, c.wantErrors)
			}
		})
	}
}

func TestNewMonitorErrors(t *testing.T) {
	seed := []kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}
	taken := prometheus.NewRegistry()
	first, err := dlq.NewMonitor(dlq.MonitorConfig{Opts: seed, DLQTopics: []string{"a.dlq"}}, taken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Close)
	cases := []struct {
		name string
		cfg  dlq.MonitorConfig
		reg  prometheus.Registerer
	}{
		{"empty dlq topic", dlq.MonitorConfig{Opts: seed, DLQTopics: []string{"a.dlq", ""}}, nil},
		{"empty retry topic", dlq.MonitorConfig{Opts: seed, RetryTopics: []string{""}}, nil},
		{"metrics already registered", dlq.MonitorConfig{Opts: seed}, taken},
		{"no seed brokers", dlq.MonitorConfig{Opts: []kgo.Opt{kgo.SeedBrokers()}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := dlq.NewMonitor(c.cfg, c.reg)
			if err == nil {
				m.Close()
				t.Fatal("NewMonitor succeeded, want an error")
			}
		})
	}
}
