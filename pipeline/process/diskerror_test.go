package process_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// fullDisk is a pebble backend whose disk fills when armed: the next Apply with writes
// fails with ENOSPC and writes nothing, as a batch Pebble cannot log would.
type fullDisk struct {
	*pebblestore.Backend[int64]
	armed *atomic.Bool
}

func (f fullDisk) Apply(w map[string]stream.Write[int64], checkpoint int64) error {
	if len(w) > 0 && f.armed.CompareAndSwap(true, false) {
		return &diskErr{}
	}
	return f.Backend.Apply(w, checkpoint)
}

type diskErr struct{}

func (*diskErr) Error() string { return "write state: " + syscall.ENOSPC.Error() }
func (*diskErr) Unwrap() error { return syscall.ENOSPC }

// startFull runs the dedup stage on dir like localState.start, its store's disk filling
// when armed is set.
func (ls *localState) startFull(id, dir string, armed *atomic.Bool) *instance {
	ls.t.Helper()
	reg := prometheus.NewRegistry()
	s, err := process.NewStage(ls.t.Context(), process.StageConfig{
		Name: "dd", Inputs: []string{ddInput}, InstanceID: id, Kafka: ls.kc,
		NewTask: func(tid process.TaskID) (process.Task, error) {
			b, err := pebblestore.Open[int64](pebblestore.Dir(dir, "dd", tid.Topic, tid.Partition, "dedup"), stream.Int64Codec{}, pebblestore.Options{CacheBytes: 1 << 20})
			if err != nil {
				return nil, err
			}
			st := stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, fullDisk{b, armed}).PackKeys(stream.ULIDKeys{})
			return &dedupTask{d: stream.NewDedup(st, time.Hour)}, nil
		},
		Changelog:  func(in, store string) string { return in + "." + store + "-changelog" },
		TxnTimeout: 30 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(ls.logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics:    process.NewMetrics(reg),
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

// TestStateWriteErrorStopsStage: the disk fills while the stage runs, so a committed
// transaction's writes cannot reach Pebble. The stage stops with an error that says so
// (ENOSPC) instead of going on with a state that misses them; restarted on the same
// directory it restores the changelog after its older checkpoint (tail), and every id,
// produced again, is still dropped: each leaves exactly once, and the state on disk
// equals a full restore of the changelog.
func TestStateWriteErrorStopsStage(t *testing.T) {
	ls := newLocalState(t)
	dir := t.TempDir()
	var armed atomic.Bool
	var want []string
	a := ls.startFull("a", dir, &armed)
	for i := range 2 {
		want = append(want, ls.produce(40, i > 0)...)
		ls.exactlyOnce("before the disk fills", want)
	}
	armed.Store(true)
	want = append(want, ls.produce(40, true)...)
	err := a.wait()
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "applying committed state") {
		t.Fatalf("stage ended with %v, want the ENOSPC of applying committed state", err)
	}
	if armed.Load() {
		t.Fatal("the disk never filled")
	}
	ls.exactlyOnce("after the write error", want) // that transaction committed in Kafka

	a = ls.startFull("a", dir, &armed)
	want = append(want, ls.produce(40, true)...)
	ls.exactlyOnce("restart after the write error", want)
	if got := a.restores("tail"); got != 1 {
		t.Fatalf("restart: %v tail restores, want 1 (full: %v)", got, a.restores("full"))
	}
	a.stop(t)
	ls.checkState("after the write error", dir)
}
