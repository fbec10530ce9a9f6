package process_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
)

// gateTask forwards every record to "out". The first record it ever sees (across the
// task instances of one test) blocks Handle until release closes, after telling blocked;
// every transaction's end reports the records it carried and whether it committed.
type gateTask struct {
	gate *gate
	n    int
}

type gate struct {
	once    sync.Once
	blocked chan struct{}
	release chan struct{}
	// committed receives the record count of each committed transaction.
	committed chan int
}

func (g *gateTask) Handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	first := false
	g.gate.once.Do(func() { first = true })
	if first {
		close(g.gate.blocked)
		select {
		case <-g.gate.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	emit(&kgo.Record{Topic: "out", Key: rec.Key, Value: rec.Value})
	g.n++
	return nil
}

func (g *gateTask) Stores() []process.Changelogged { return nil }

func (g *gateTask) Done(committed bool) {
	if committed && g.n > 0 {
		g.gate.committed <- g.n
	}
	g.n = 0
}

// TestStageEndAfterLostHeartbeat: the group coordinator stops knowing the stage's member
// while a transaction is open (here: kfake answers one heartbeat with UNKNOWN_MEMBER_ID,
// as a killed coordinator's successor does). kgo's heartbeat loop then ends and the
// group loop waits for AllowRebalance (BlockRebalanceOnPoll) before it reports the loss,
// while GroupTransactSession.End waits for a forced heartbeat that nothing receives any
// more: without a bound on End the stage stalls for good (the clean stage's stall after a
// coordinator kill, a leader kill or two brokers down on the real cluster). With the
// bound, End gives up, the stage builds a new session under the same transactional id
// (fencing the old producer) and carries on: every input record appears exactly once in
// the committed output and is committed once.
func TestStageEndAfterLostHeartbeat(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, "in", "out"),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	g := &gate{blocked: make(chan struct{}), release: make(chan struct{}), committed: make(chan int, 100)}
	var logs lockedBuffer
	reg := prometheus.NewRegistry()
	s, err := process.NewStage(ctx, process.StageConfig{
		Metrics:    process.NewMetrics(reg),
		Name:       "endstall",
		Inputs:     []string{"in"},
		InstanceID: "i1",
		// Heartbeats every 200 ms; End is bounded by the session timeout by default.
		Kafka:      kafka.Config{Brokers: cluster.ListenAddrs(), SessionTimeout: time.Second},
		NewTask:    func(process.TaskID) (process.Task, error) { return &gateTask{gate: g}, nil },
		Changelog:  func(in, store string) string { return in + "." + store },
		TxnTimeout: 30 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("stage: %v", err)
			}
		case <-time.After(10 * time.Second): // bounded: a stalled stage never returns
			t.Error("the stage did not stop within 10 s of its context ending")
			s.Kill()
		}
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 1)
	select {
	case <-g.blocked:
	case <-ctx.Done():
		t.Fatal("the stage never handled the first record")
	}
	// The next heartbeat, sent by the heartbeat loop while the transaction is open, is
	// answered UNKNOWN_MEMBER_ID; later ones reach the broker again.
	hbFailed := make(chan struct{})
	cluster.ControlKey(kmsg.Heartbeat.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		close(hbFailed)
		return resp, nil, true
	})
	select {
	case <-hbFailed:
	case <-ctx.Done():
		t.Fatal("no heartbeat while the transaction was open")
	}
	close(g.release)
	produce(1, 10)

	total := 0
	for total < 10 {
		select {
		case n := <-g.committed:
			total += n
		case <-ctx.Done():
			t.Fatalf("the stage stalled after the lost heartbeat: %d of 10 records committed", total)
		}
	}
	if total != 10 {
		t.Fatalf("%d records committed, want 10", total)
	}

	// Every input once in the committed output, in order: read up to the last one.
	rd, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []string
	for !slices.Contains(got, "9") {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("committed output so far %v, want 0..9", got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	want := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	if !slices.Equal(got, want) {
		t.Fatalf("committed output %v, want %v (each input exactly once)", got, want)
	}
	if l := logs.String(); !strings.Contains(l, "Kafka session replaced") {
		t.Fatalf("the stage recovered without replacing its session; log:\n%s", l)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "sluice_stage_sessions_replaced_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	if n < 1 {
		t.Fatalf("sluice_stage_sessions_replaced_total{stage=endstall} = %v after a replaced session, want >= 1", n)
	}
}

// lockedBuffer is a log destination several goroutines write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStageTaskStartRetried: a task that cannot start (its restore fails while a broker
// is down) no longer stops the stage, and with it the whole processor: the stage replaces
// its session and the new assignment starts the task again. Here NewTask fails twice,
// then works; every record is committed once.
func TestStageTaskStartRetried(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0), kfake.SeedTopics(1, "in", "out"),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	g := &gate{blocked: make(chan struct{}), release: make(chan struct{}), committed: make(chan int, 100)}
	g.once.Do(func() {}) // no record blocks
	var mu sync.Mutex
	starts := 0
	var logs lockedBuffer
	s, err := process.NewStage(ctx, process.StageConfig{
		Name:       "startretry",
		Inputs:     []string{"in"},
		InstanceID: "i1",
		Kafka:      kafka.Config{Brokers: cluster.ListenAddrs(), SessionTimeout: time.Second},
		NewTask: func(process.TaskID) (process.Task, error) {
			mu.Lock()
			defer mu.Unlock()
			starts++
			if starts <= 2 {
				return nil, fmt.Errorf("restore: LEADER_NOT_AVAILABLE (start %d)", starts)
			}
			return &gateTask{gate: g}, nil
		},
		Changelog:    func(in, store string) string { return in + "." + store },
		TxnTimeout:   30 * time.Second,
		RetryBackoff: 10 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stage: %v", err)
			}
		case <-time.After(10 * time.Second): // bounded
			t.Error("the stage did not stop within 10 s of its context ending")
			s.Kill()
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.DefaultProduceTopic("in"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for total < 10 {
		select {
		case n := <-g.committed:
			total += n
		case err := <-done:
			done <- err
			t.Fatalf("the stage stopped after a failed task start: %v (%d of 10 committed)", err, total)
		case <-ctx.Done():
			t.Fatalf("%d of 10 records committed; log:\n%s", total, logs.String())
		}
	}
	if total != 10 {
		t.Fatalf("%d records committed, want 10", total)
	}
}
