package process_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/stagekit"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// dedupTask forwards the first record of every key (an event id) to "out": a clean
// stage without schemas, on a Dedup store kept on disk.
type dedupTask struct {
	d *stream.Dedup
}

func (t *dedupTask) Handle(_ context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	id, ts := string(rec.Key), rec.Timestamp.UnixMilli()
	if t.d.Contains(id, ts) {
		return nil
	}
	t.d.Add(id, ts)
	emit(&kgo.Record{Topic: "out", Partition: rec.Partition, Key: rec.Key, Value: rec.Value})
	return nil
}

func (t *dedupTask) Stores() []process.Changelogged { return []process.Changelogged{t.d.Store()} }
func (t *dedupTask) Done(bool)                      {}

const (
	ddInput     = "in"
	ddChangelog = "in.dedup-changelog"
)

// localState is a broker with the dedup stage's topics, where stage instances run one
// at a time, each on a state directory of its own choosing.
type localState struct {
	t       *testing.T
	kc      kafka.Config
	cluster *kfake.Cluster
	cl      *kgo.Client
	logs    *syncBuffer
	next    int // ids produced so far
	// wait bounds waitOut (default 30 s).
	wait time.Duration
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

func newLocalState(t *testing.T) *localState { return newLocalStateOn(t, nil) }

// newLocalStateOn is newLocalState on the brokers given (a real cluster, for
// measurements: its topics of an earlier run are deleted first), or on kfake when none.
func newLocalStateOn(t *testing.T, brokers []string) *localState {
	t.Helper()
	var c *kfake.Cluster
	if len(brokers) == 0 {
		var err error
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, ddInput, "out"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		brokers = c.ListenAddrs()
	}
	kc := kafka.Config{Brokers: brokers}
	cl, err := kgo.NewClient(append(kc.Opts(), kgo.DefaultProduceTopic(ddInput))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	topics := map[string]map[string]*string{ddChangelog: {"cleanup.policy": kadm.StringPtr("compact")}}
	if c == nil {
		topics[ddInput], topics["out"] = nil, nil
		if _, err := adm.DeleteTopics(t.Context(), ddInput, "out", ddChangelog); err != nil {
			t.Fatal(err)
		}
	}
	for topic, configs := range topics {
		var resp kadm.CreateTopicResponse
		tick := time.NewTicker(200 * time.Millisecond)
		for try := 0; ; try++ { // a topic just deleted may not be gone yet: bounded poll
			resp, err = adm.CreateTopic(t.Context(), 1, -1, configs, topic)
			if err == nil {
				err = resp.Err
			}
			if err == nil || try == 50 || !errors.Is(err, kerr.TopicAlreadyExists) {
				break
			}
			<-tick.C
		}
		tick.Stop()
		if err != nil {
			t.Fatal(err)
		}
	}
	return &localState{t: t, kc: kc, cluster: c, cl: cl, logs: &syncBuffer{}}
}

// instance is one running stage.
type instance struct {
	stage   *process.Stage
	cancel  context.CancelFunc
	done    chan error
	metrics *prometheus.Registry
}

// start runs a stage instance id on state directory dir (empty: in memory); afterCommit
// is its failpoint.
func (ls *localState) start(id, dir string, afterCommit func() error) *instance {
	ls.t.Helper()
	reg := prometheus.NewRegistry()
	s, err := process.NewStage(ls.t.Context(), process.StageConfig{
		Name:       "dd",
		Inputs:     []string{ddInput},
		InstanceID: id,
		Kafka:      ls.kc,
		NewTask: func(tid process.TaskID) (process.Task, error) {
			if dir == "" {
				st := stream.NewStore[int64]("dedup", stream.Int64Codec{}).PackKeys(stream.ULIDKeys{})
				return &dedupTask{d: stream.NewDedup(st, time.Hour)}, nil
			}
			b, err := pebblestore.Open[int64](pebblestore.Dir(dir, "dd", tid.Topic, tid.Partition, "dedup"), stream.Int64Codec{}, pebblestore.Options{CacheBytes: 1 << 20})
			if err != nil {
				return nil, err
			}
			st := stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, b).PackKeys(stream.ULIDKeys{})
			return &dedupTask{d: stream.NewDedup(st, time.Hour)}, nil
		},
		Changelog:   func(in, store string) string { return in + "." + store + "-changelog" },
		TxnTimeout:  30 * time.Second,
		AfterCommit: afterCommit,
		Logger:      slog.New(slog.NewTextHandler(ls.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics:     process.NewMetrics(reg),
	})
	if err != nil {
		ls.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ls.t.Context())
	in := &instance{stage: s, cancel: cancel, done: make(chan error, 1), metrics: reg}
	go func() { in.done <- s.Run(ctx) }()
	ls.t.Cleanup(func() { s.Kill(); in.wait() })
	return in
}

// wait returns Run's result once it returned.
func (in *instance) wait() error {
	err := <-in.done
	in.done <- err
	return err
}

// stop ends the instance gracefully: it leaves the group, so the next instance gets the
// partition at once.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.cancel()
	if err := in.wait(); err != nil {
		t.Fatalf("stage: %v", err)
	}
}

// restores is the count of the instance's store restores in mode (tail or full).
func (in *instance) restores(mode string) float64 {
	mfs, _ := in.metrics.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "sluice_state_restores_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "mode" && l.GetValue() == mode {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// produce writes n new ids and, with dups, every id produced before them again (whose
// event time is within the horizon), and returns the new ids.
func (ls *localState) produce(n int, dups bool) []string {
	ls.t.Helper()
	var recs []*kgo.Record
	var ids []string
	ts := time.UnixMilli(1_700_000_000_000)
	if dups {
		for i := range ls.next {
			recs = append(recs, &kgo.Record{Key: []byte(idOf(i)), Value: []byte("dup"), Timestamp: ts})
		}
	}
	for i := ls.next; i < ls.next+n; i++ {
		ids = append(ids, idOf(i))
		recs = append(recs, &kgo.Record{Key: []byte(idOf(i)), Value: []byte("new"), Timestamp: ts})
	}
	ls.next += n
	if err := ls.cl.ProduceSync(ls.t.Context(), recs...).FirstErr(); err != nil {
		ls.t.Fatal(err)
	}
	return ids
}

// idOf is the i-th event id: a ULID, so the store packs it.
func idOf(i int) string { return fmt.Sprintf("01J9ZZZZZZZZZZZZZZZZ%06d", i) }

// waitOut waits until "out" holds n committed records and returns how often each key
// appears there.
func (ls *localState) waitOut(n int) map[string]int {
	ls.t.Helper()
	wait := ls.wait
	if wait == 0 {
		wait = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ls.t.Context(), wait)
	defer cancel()
	for {
		got := map[string]int{}
		total := 0
		if err := kafka.ReadCommitted(ctx, ls.kc, "out", []int32{0}, func(r *kgo.Record) error {
			got[string(r.Key)]++
			total++
			return nil
		}); err != nil {
			ls.t.Fatalf("read out: %v", err)
		}
		if total >= n {
			return got
		}
		select {
		case <-ctx.Done():
			ls.t.Fatalf("out holds %d records, want %d", total, n)
		case <-time.After(20 * time.Millisecond): // polling a real broker's output
		}
	}
}

// exactlyOnce checks that out holds every id of want once and nothing else.
func (ls *localState) exactlyOnce(step string, want []string) {
	ls.t.Helper()
	got := ls.waitOut(len(want))
	wantM := map[string]int{}
	for _, id := range want {
		wantM[id] = 1
	}
	if !maps.Equal(got, wantM) {
		for k, n := range got {
			if n != 1 {
				ls.t.Errorf("%s: id %s in out %d times", step, k, n)
			}
		}
		ls.t.Fatalf("%s: out holds %d distinct ids, want %d", step, len(got), len(wantM))
	}
}

// checkState compares the store on disk in dir with a full restore of the changelog.
func (ls *localState) checkState(step, dir string) {
	ls.t.Helper()
	want := map[string]int64{}
	if err := kafka.ReadCommitted(ls.t.Context(), ls.kc, ddChangelog, []int32{0}, func(r *kgo.Record) error {
		if r.Value == nil {
			delete(want, string(r.Key))
			return nil
		}
		v, err := stream.Int64Codec{}.Decode(r.Value)
		want[string(r.Key)] = v
		return err
	}); err != nil {
		ls.t.Fatal(err)
	}
	b, err := pebblestore.Open[int64](storeDir(dir), stream.Int64Codec{}, pebblestore.Options{CacheBytes: 1 << 20})
	if err != nil {
		ls.t.Fatal(err)
	}
	defer b.Close()
	got := map[string]int64{}
	if err := b.Range(func(k string, v int64) bool { got[k] = v; return true }); err != nil {
		ls.t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		ls.t.Fatalf("%s: the state on disk holds %d keys, a full restore of the changelog %d", step, len(got), len(want))
	}
}

func storeDir(root string) string { return pebblestore.Dir(root, "dd", ddInput, 0, "dedup") }

// The failpoint between the Kafka commit and the local apply: the stage dies after its
// transaction committed and before the writes reached Pebble. The next start finds the
// checkpoint of the transaction before, restores the tail (the lost transaction's
// changelog records) and drops every duplicate of the lost transaction's ids: each id
// leaves exactly once, and the state on disk equals a full restore of the changelog.
// Then the directory is deleted, its checkpoint record corrupted, its checkpoint pushed
// beyond the changelog's end: each time a full restore with a WARN that says why, and
// still exactly once. Last, the partition moves to an instance with no local state (full
// restore) and back to the first one's stale checkpoint (tail restore only).
func TestLocalStateFailpointAndRecovery(t *testing.T) {
	ls := newLocalState(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	var want []string

	// Two transactions commit and reach disk; the third commits in Kafka only.
	var commits sync.Mutex
	n, fail := 0, 3
	failpoint := func() error {
		commits.Lock()
		defer commits.Unlock()
		n++
		if n == fail {
			return errors.New("failpoint: killed between the Kafka commit and the local apply")
		}
		return nil
	}
	a := ls.start("a", dirA, failpoint)
	for i := range 3 {
		want = append(want, ls.produce(50, i > 0)...)
		if i < 2 {
			ls.exactlyOnce(fmt.Sprintf("batch %d", i), want)
		}
	}
	if err := a.wait(); !errors.Is(err, stagekit.ErrKilled) || !strings.Contains(err.Error(), "failpoint") {
		t.Fatalf("stage ended with %v, want the failpoint", err)
	}
	// The lost transaction's outputs are visible (it committed in Kafka).
	ls.exactlyOnce("after the failpoint", want)

	a = ls.start("a", dirA, nil)
	want = append(want, ls.produce(50, true)...)
	ls.exactlyOnce("restart after the failpoint", want)
	if got := a.restores("tail"); got != 1 {
		t.Fatalf("restart after the failpoint: %v tail restores, want 1 (a full: %v)", got, a.restores("full"))
	}
	a.stop(t)
	ls.checkState("after the failpoint", dirA)
	if logs := ls.logs.take(); logs != "" {
		t.Fatalf("a WARN on a trusted checkpoint: %s", logs)
	}

	recovery := []struct {
		name  string
		spoil func(t *testing.T)
		warn  string
	}{
		{"directory deleted", func(t *testing.T) {
			if err := os.RemoveAll(dirA); err != nil {
				t.Fatal(err)
			}
		}, "no local checkpoint"},
		{"checkpoint record corrupt", func(t *testing.T) {
			db, err := pebble.Open(storeDir(dirA), &pebble.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Set([]byte{'m'}, []byte("not a checkpoint"), pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}, "local state discarded"},
		{"checkpoint beyond the changelog end", func(t *testing.T) {
			b, err := pebblestore.Open[int64](storeDir(dirA), stream.Int64Codec{}, pebblestore.Options{CacheBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, b).CommitAt(1 << 40); err != nil {
				t.Fatal(err)
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}, "beyond the changelog's end"},
	}
	for _, r := range recovery {
		r.spoil(t)
		a = ls.start("a", dirA, nil)
		want = append(want, ls.produce(20, true)...)
		ls.exactlyOnce(r.name, want)
		if a.restores("full") != 1 || a.restores("tail") != 0 {
			t.Fatalf("%s: %v full and %v tail restores, want one full", r.name, a.restores("full"), a.restores("tail"))
		}
		a.stop(t)
		if logs := ls.logs.take(); !strings.Contains(logs, r.warn) {
			t.Fatalf("%s: no WARN saying %q: %q", r.name, r.warn, logs)
		}
		ls.checkState(r.name, dirA)
	}

	// The partition moves to b, which has no local state, and back to a.
	b := ls.start("b", dirB, nil)
	want = append(want, ls.produce(30, true)...)
	ls.exactlyOnce("moved to b", want)
	if b.restores("full") != 1 {
		t.Fatalf("moved to b: %v full restores, want 1", b.restores("full"))
	}
	b.stop(t)
	if logs := ls.logs.take(); !strings.Contains(logs, "no local checkpoint") {
		t.Fatalf("moved to b: no WARN saying b has no local checkpoint: %q", logs)
	}
	a = ls.start("a", dirA, nil)
	want = append(want, ls.produce(30, true)...)
	ls.exactlyOnce("back to a", want)
	if a.restores("tail") != 1 || a.restores("full") != 0 {
		t.Fatalf("back to a: %v tail and %v full restores, want one tail", a.restores("tail"), a.restores("full"))
	}
	a.stop(t)
	ls.checkState("back to a", dirA)
	if logs := ls.logs.take(); logs != "" {
		t.Fatalf("a WARN moving back to a trusted checkpoint: %s", logs)
	}
}
