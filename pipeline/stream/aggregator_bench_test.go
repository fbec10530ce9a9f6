package stream_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// benchEvents is a seeded stream over 1000 groups: one event every 10 ms of event time
// on average, each up to 2 s behind the newest (small disorder, well within grace), with
// an amount and one of 10000 user ids. The stream repeats with time shifted by span.
func benchEvents(seed uint64) (evs []stream.Event, span int64) {
	const n, groups, step, disorder = 1 << 16, 1000, 10, 2000
	r := rand.New(rand.NewPCG(seed, 1))
	keys := make([]string, groups)
	vals := make([][]string, groups)
	for i := range keys {
		keys[i] = fmt.Sprintf("g%04d", i)
		vals[i] = []string{keys[i]}
	}
	users := make([]string, 10000)
	for i := range users {
		users[i] = fmt.Sprintf("u-%d", i)
	}
	evs = make([]stream.Event, n)
	for i := range evs {
		g := r.IntN(groups)
		evs[i] = stream.Event{
			Source: "p0", Time: int64(i)*step + disorder - r.Int64N(disorder), Group: keys[g], GroupValues: vals[g],
			Values:   map[string]any{"amount": float64(r.IntN(10000)) / 100, "user_id": users[r.IntN(len(users))]},
			IngestTS: int64(i), EventID: fmt.Sprintf("e%d", i),
		}
	}
	return evs, n * step
}

// benchAdd feeds b.N events through spec, committing the stores every 1000 events as a
// stage would per transaction, and reports events/s.
func benchAdd(b *testing.B, spec stream.Spec) {
	evs, span := benchEvents(1)
	e := newEngine(b, spec)
	mask := len(evs) - 1
	results, late := 0, 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := evs[i&mask]
		ev.Time += int64(i/len(evs)) * span
		rs, l := e.agg.Add(ev)
		results += len(rs)
		if l != nil {
			late++
		}
		if i%1000 == 999 {
			e.windows.Commit()
			e.marks.Commit()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(results)/float64(b.N), "results/event")
	if late > 0 {
		b.Fatalf("%d late events in a stream with disorder within grace", late)
	}
}

func BenchmarkTumbling(b *testing.B) {
	spec := tumbling(60_000, 5_000, stream.EmitFinal)
	spec.Measures = []stream.Measure{{Func: stream.MeasureCount}, {Func: stream.MeasureSum, Field: "amount"}, {Func: stream.MeasureAvg, Field: "amount"},
		{Func: stream.MeasureMin, Field: "amount"}, {Func: stream.MeasureMax, Field: "amount"}}
	benchAdd(b, spec)
}

func BenchmarkHopping(b *testing.B) {
	spec := hopping(300_000, 60_000, 10_000, stream.EmitFinal)
	spec.Measures = []stream.Measure{{Func: stream.MeasureCount}, {Func: stream.MeasureCountDistinct, Field: "user_id"}}
	benchAdd(b, spec)
}

func BenchmarkSession(b *testing.B) {
	spec := session(5_000, 5_000, stream.EmitFinal)
	spec.Measures = []stream.Measure{{Func: stream.MeasureCount}, {Func: stream.MeasureSum, Field: "amount"}}
	benchAdd(b, spec)
}

// BenchmarkWindowStateCodec encodes and decodes a typical hopping window state (the
// stage encodes every changed window once per transaction).
func BenchmarkWindowStateCodec(b *testing.B) {
	spec := hopping(300_000, 60_000, 10_000, stream.EmitFinal)
	spec.Measures = []stream.Measure{{Func: stream.MeasureSum, Field: "amount"}, {Func: stream.MeasureCountDistinct, Field: "user_id"}}
	e := newEngine(b, spec)
	evs, _ := benchEvents(2)
	for _, ev := range evs[:20000] {
		e.agg.Add(ev)
	}
	// The window with the smallest key, so every run measures the same state.
	var ws *stream.WindowState
	minKey := ""
	e.windows.Range(func(k string, v *stream.WindowState) bool {
		if ws == nil || k < minKey {
			ws, minKey = v, k
		}
		return true
	})
	c := stream.WindowStateCodec{}
	buf := c.Encode(nil, ws)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		buf = c.Encode(buf[:0], ws)
		if _, err := c.Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bytes/state")
}
