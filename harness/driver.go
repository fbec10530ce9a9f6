package harness

import (
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// Driver runs the window engine synchronously, with no broker and nothing to wait on,
// like Kafka Streams' TopologyTestDriver or goka's tester: every call returns when its
// effects are visible. It owns the engine's two stores and treats each call as one
// transaction: after it, the stores' pending writes go to an in-memory changelog
// (compacted: the latest encoded value per key) and are committed. Restart rebuilds the
// engine from that changelog, as a restarted task restores from its changelog topic.
//
// A Driver is not safe for concurrent use.
type Driver struct {
	t    testing.TB
	spec stream.Spec

	windows *stream.Store[*stream.WindowState]
	marks   *stream.Store[int64]
	agg     *stream.Aggregator

	// Changelogs, compacted: key -> encoded value of every live committed entry.
	windowLog map[string][]byte
	markLog   map[string][]byte

	outputs  []stream.Result
	late     []stream.Event
	lateInfo []stream.Late
	restarts int
}

// The driver's store names (their changelog topics in production).
const (
	driverWindowStore = "windows"
	driverMarkStore   = "watermarks"
)

// NewDriver returns a driver over a fresh engine for spec; it fails the test if the
// engine rejects spec.
func NewDriver(t testing.TB, spec stream.Spec) *Driver {
	t.Helper()
	d := &Driver{
		t:         t,
		spec:      spec,
		windowLog: make(map[string][]byte),
		markLog:   make(map[string][]byte),
	}
	d.build()
	return d
}

// build creates fresh stores restored from the changelogs and an engine over them.
func (d *Driver) build() {
	d.t.Helper()
	d.windows = stream.NewStore[*stream.WindowState](driverWindowStore, stream.WindowStateCodec{})
	d.marks = stream.NewStore[int64](driverMarkStore, stream.Int64Codec{})
	driverRestore(d.t, d.windows, d.windowLog)
	driverRestore(d.t, d.marks, d.markLog)
	agg, err := stream.NewAggregator(d.spec, d.windows, d.marks)
	if err != nil {
		d.t.Fatalf("driver: new aggregator: %v", err)
	}
	d.agg = agg
	d.agg.Restored()
}

// driverRestore replays a compacted changelog into s, in key order.
func driverRestore[V any](t testing.TB, s *stream.Store[V], log map[string][]byte) {
	t.Helper()
	keys := make([]string, 0, len(log))
	for k := range log {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := s.Restore(k, log[k]); err != nil {
			t.Fatalf("driver: restore %s key %q: %v", s.Name(), k, err)
		}
	}
}

// Pipe feeds one event to the engine and commits.
func (d *Driver) Pipe(ev stream.Event) {
	res, late := d.agg.Add(ev)
	d.outputs = append(d.outputs, res...)
	if late != nil {
		d.late = append(d.late, ev)
		d.lateInfo = append(d.lateInfo, *late)
	}
	d.commit()
}

// PipeAll feeds events in order, committing after each.
func (d *Driver) PipeAll(evs ...stream.Event) {
	for _, ev := range evs {
		d.Pipe(ev)
	}
}

// Advance raises a source's watermark (a watermark marker) and commits.
func (d *Driver) Advance(source string, wm int64) {
	d.outputs = append(d.outputs, d.agg.Advance(source, wm)...)
	d.commit()
}

// commit ends the call's transaction: pending writes go to the changelogs, then the
// stores commit them.
func (d *Driver) commit() {
	driverLog(d.windows, d.windowLog)
	driverLog(d.marks, d.markLog)
	d.windows.Commit()
	d.marks.Commit()
}

// driverLog appends s's pending writes to a compacted changelog.
func driverLog[V any](s *stream.Store[V], log map[string][]byte) {
	s.Changes(func(k string, v []byte) {
		if v == nil {
			delete(log, k)
			return
		}
		log[k] = slices.Clone(v)
	})
}

// Restart simulates a crash and restore: it commits, then rebuilds both stores from the
// changelogs (every committed entry, encoded through the codecs), builds a new engine
// over them and calls Restored. Outputs and late events so far are kept.
func (d *Driver) Restart() {
	d.t.Helper()
	d.commit()
	d.build()
	d.restarts++
}

// Restarts is the number of Restart calls so far.
func (d *Driver) Restarts() int { return d.restarts }

// Outputs returns every result emitted so far, in emission order.
func (d *Driver) Outputs() []stream.Result { return slices.Clone(d.outputs) }

// LateEvents returns every event the engine reported late, in arrival order.
func (d *Driver) LateEvents() []stream.Event { return slices.Clone(d.late) }

// LateReasons returns the engine's report for each late event, parallel to LateEvents.
func (d *Driver) LateReasons() []stream.Late { return slices.Clone(d.lateInfo) }

// StreamTime is the engine's current stream time.
func (d *Driver) StreamTime() int64 { return d.agg.StreamTime() }

// Watermark is one source's current watermark.
func (d *Driver) Watermark(source string) int64 { return d.agg.Watermark(source) }

// OpenWindows is the number of open windows in the engine's state.
func (d *Driver) OpenWindows() int { return d.agg.OpenWindows() }

// StateKeys is the number of live entries in the window and watermark changelogs, the
// state a restart would restore.
func (d *Driver) StateKeys() (windows, watermarks int) { return len(d.windowLog), len(d.markLog) }
