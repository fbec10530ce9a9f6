package stream_test

import (
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// Sessions with gap 5, grace 0 (docs/DESIGN.md#windows-and-watermarks), and a record
// exactly gap after a session's last record, which joins it.
func TestSessions(t *testing.T) {
	vsum := []stream.Measure{{Func: stream.MeasureSum, Field: "v"}}
	cases := []struct {
		name  string
		spec  stream.Spec
		steps []step
		open  int // OpenWindows at the end
	}{
		{
			// P1 holds stream time back, so [10,12] is still open when 16 arrives and 16
			// bridges [10,12] and [20,20] into [10,20]: one final result, none for the parts.
			name: "C: 10, 12, 20, then 16 bridges everything into [10,20]",
			spec: withMeasures(session(5, 0, stream.EmitFinal, "p0", "p1"), vsum),
			steps: []step{
				{src: "p1", ts: 11, adv: true},
				{ts: 10, v: 10}, {ts: 12, v: 12}, {ts: 20, v: 20},
				{ts: 16, v: 16, st: at(11)},
				{src: "p1", ts: 24, adv: true, st: at(20)},
				{src: "p1", ts: 100, adv: true, st: at(20)},
				{ts: 24, adv: true, st: at(24)},
				{ts: 25, adv: true, st: at(25), want: []string{"k[10,20] n=4 sum_v=58 final"}},
			},
		},
		{
			// One source: 20 moves stream time to 20 >= 12+5+0, so [10,12] closes first
			// and 16 joins only [20,20]; closed sessions are never reopened.
			name: "C with one source: [10,12] closes at 20, 16 joins [20,20]",
			spec: withMeasures(session(5, 0, stream.EmitFinal), vsum),
			steps: []step{
				{ts: 10, v: 10}, {ts: 12, v: 12},
				{ts: 20, v: 20, want: []string{"k[10,12] n=2 sum_v=22 final"}},
				{ts: 16, v: 16},
				{ts: 25, adv: true, want: []string{"k[16,20] n=2 sum_v=36 final"}},
			},
		},
		{
			name: "C: at stream time 30 (another key) 16 is late",
			spec: session(5, 0, stream.EmitFinal),
			steps: []step{
				{ts: 10}, {ts: 12},
				{ts: 20, want: []string{"k[10,12] n=2 final"}},
				{ts: 30, group: "other", want: []string{"k[20,20] n=1 final"}},
				{ts: 16, late: true},
			},
			open: 1,
		},
		{
			name: "C: 10 then 15, exactly gap apart, is one session [10,15]",
			spec: session(5, 0, stream.EmitFinal),
			steps: []step{
				{ts: 10},
				{ts: 15},
				{ts: 19, adv: true},
				{ts: 20, adv: true, want: []string{"k[10,15] n=2 final"}},
			},
		},
		{
			name: "gap + 1 apart: two sessions",
			spec: session(5, 0, stream.EmitFinal),
			steps: []step{
				{ts: 10},
				{ts: 16, want: []string{"k[10,10] n=1 final"}},
				{ts: 21, adv: true, want: []string{"k[16,16] n=1 final"}},
			},
		},
		{
			name: "exactly gap before the first record joins",
			spec: session(5, 3, stream.EmitFinal),
			steps: []step{
				{ts: 10},
				{ts: 5},
				{ts: 18, adv: true, want: []string{"k[5,10] n=2 final"}},
			},
		},
		{
			name: "record inside a session changes neither end",
			spec: session(5, 0, stream.EmitFinal),
			steps: []step{
				{ts: 10}, {ts: 14}, {ts: 12},
				{ts: 18, adv: true},
				{ts: 19, adv: true, want: []string{"k[10,14] n=3 final"}},
			},
		},
		{
			name: "bridging record merges two sessions; updates emit only the merged one",
			spec: withMeasures(session(5, 10, stream.EmitUpdates), vsum),
			steps: []step{
				{ts: 10, v: 1, want: []string{"k[10,10] n=1 sum_v=1"}},
				{ts: 20, v: 2, want: []string{"k[20,20] n=1 sum_v=2"}},
				{ts: 15, v: 4, want: []string{"k[10,20] n=3 sum_v=7"}},
				{ts: 35, adv: true}, // closing emits nothing in updates mode
			},
		},
		{
			// A record can bridge at most two sessions (open sessions are more than
			// gap apart); two bridges in a row make one session.
			name: "two bridges in a row",
			spec: session(2, 100, stream.EmitFinal),
			steps: []step{
				{ts: 10}, {ts: 14}, {ts: 18}, {ts: 12}, {ts: 16},
				{ts: 120, adv: true, want: []string{"k[10,18] n=5 final"}},
			},
		},
		{
			name: "extending a session backwards moves its key",
			spec: session(5, 0, stream.EmitFinal),
			steps: []step{
				{ts: 20}, {ts: 16}, {ts: 11},
				{ts: 24, adv: true},
				{ts: 25, adv: true, want: []string{"k[11,20] n=3 final"}},
			},
		},
		{
			name: "session close instant: emitted at end+gap+grace; then a record there is late",
			spec: session(5, 2, stream.EmitFinal),
			steps: []step{
				{ts: 10},
				{ts: 16, adv: true},
				{ts: 17, adv: true, want: []string{"k[10,10] n=1 final"}},
				{ts: 10, late: true},
				{ts: 12}, // would have joined, but the closed session is not reopened
				{ts: 19, adv: true, want: []string{"k[12,12] n=1 final"}},
			},
		},
		{
			name: "grace 0, exact gap after stream time reached the close: a new session",
			spec: session(5, 0, stream.EmitFinal, "p0", "p1"),
			steps: []step{
				{ts: 10},
				{src: "p1", ts: 15, adv: true},
				{ts: 15, adv: true, want: []string{"k[10,10] n=1 final"}},
				{ts: 15},
				{ts: 20, adv: true, src: "p1"},
				{ts: 20, adv: true, want: []string{"k[15,15] n=1 final"}},
			},
		},
		{
			name: "sessions of many groups close in end, group order",
			spec: session(5, 0, stream.EmitFinal),
			steps: []step{
				{ts: 10, group: "b"}, {ts: 10, group: "a"}, {ts: 11, group: "c"}, {ts: 12, group: "a"},
				{ts: 100, group: "z", want: []string{"b[10,10] n=1 final", "c[11,11] n=1 final", "a[10,12] n=2 final"}},
			},
			open: 1,
		},
		{
			name: "late record for a session: the session it would form is closed",
			spec: session(5, 5, stream.EmitFinal),
			steps: []step{
				{ts: 100},
				{ts: 89, late: true}, // [89,89] closes at 99 <= 100
				{ts: 90, late: true}, // [90,90] closes at 100 <= 100
				{ts: 95},             // joins [100,100]
				{ts: 91},             // [91,91] would be open, and joins [95,100]
				{ts: 109, adv: true},
				{ts: 110, adv: true, want: []string{"k[91,100] n=3 final"}},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := run(t, c.spec, c.steps)
			if got := e.agg.OpenWindows(); got != c.open {
				t.Fatalf("OpenWindows = %d, want %d", got, c.open)
			}
		})
	}
}
