package stream_test

import (
	"math"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// windowsOf returns the windows one record at ts lands in, on a fresh engine in emit
// updates mode, as "[start,end)" strings.
func windowsOf(t *testing.T, spec stream.Spec, ts int64) []string {
	t.Helper()
	spec.Emit = stream.EmitUpdates
	e := newEngine(t, spec)
	rs, late := e.agg.Add(stream.Event{Source: "p0", Time: ts, Group: "k"})
	if late != nil {
		t.Fatalf("ts=%d late: %+v", ts, late)
	}
	var out []string
	for _, r := range rs {
		out = append(out, fmtResult(spec.Type, r))
	}
	return out
}

// Golden vector B and section 4 cases 1 and 7: boundaries, the epoch, negative times.
func TestAssignFixedWindows(t *testing.T) {
	cases := []struct {
		name string
		spec stream.Spec
		ts   int64
		want []string
	}{
		{"B: hopping near the epoch includes a negative start", hopping(10, 5, 0, ""), 3, []string{"k[-5,5) n=1", "k[0,10) n=1"}},
		{"B: hopping at 12", hopping(10, 5, 0, ""), 12, []string{"k[5,15) n=1", "k[10,20) n=1"}},
		{"tumbling ts=start", tumbling(10, 0, ""), 10, []string{"k[10,20) n=1"}},
		{"tumbling ts=end-1", tumbling(10, 0, ""), 19, []string{"k[10,20) n=1"}},
		{"tumbling ts=end belongs to the next window", tumbling(10, 0, ""), 20, []string{"k[20,30) n=1"}},
		{"hopping ts=start", hopping(10, 5, 0, ""), 10, []string{"k[5,15) n=1", "k[10,20) n=1"}},
		{"hopping ts=end-1", hopping(10, 5, 0, ""), 14, []string{"k[5,15) n=1", "k[10,20) n=1"}},
		{"hopping ts=end", hopping(10, 5, 0, ""), 15, []string{"k[10,20) n=1", "k[15,25) n=1"}},
		{"hopping 5m every 1m: five windows", hopping(300, 60, 0, ""), 125, []string{"k[-120,180) n=1", "k[-60,240) n=1", "k[0,300) n=1", "k[60,360) n=1", "k[120,420) n=1"}},
		{"hopping advance = size is tumbling", hopping(10, 10, 0, ""), 7, []string{"k[0,10) n=1"}},
		{"zero", tumbling(10, 0, ""), 0, []string{"k[0,10) n=1"}},
		{"minus one floors down", tumbling(10, 0, ""), -1, []string{"k[-10,0) n=1"}},
		{"negative start of a window", tumbling(10, 0, ""), -10, []string{"k[-10,0) n=1"}},
		{"negative end-1", tumbling(10, 0, ""), -11, []string{"k[-20,-10) n=1"}},
		{"hopping negative", hopping(10, 5, 0, ""), -6, []string{"k[-15,-5) n=1", "k[-10,0) n=1"}},
		{"small time in a large window", tumbling(60000, 0, ""), 1, []string{"k[0,60000) n=1"}},
		// Overflow guards: the end saturates at MaxInt64, the start at MinInt64.
		{"max int64-1 tumbling: the end saturates", tumbling(10, 0, ""), math.MaxInt64 - 1, []string{"k[9223372036854775800,9223372036854775807) n=1"}},
		{"max int64-1 hopping", hopping(10, 5, 0, ""), math.MaxInt64 - 1, []string{"k[9223372036854775800,9223372036854775807) n=1", "k[9223372036854775805,9223372036854775807) n=1"}},
		{"min int64 tumbling clamps the start", tumbling(10, 0, ""), math.MinInt64, []string{"k[-9223372036854775808,-9223372036854775800) n=1"}},
		{"min int64 hopping keeps one clamped window", hopping(10, 5, 0, ""), math.MinInt64, []string{"k[-9223372036854775808,-9223372036854775800) n=1"}},
		{"min int64 with a power-of-two size", tumbling(1024, 0, ""), math.MinInt64, []string{"k[-9223372036854775808,-9223372036854774784) n=1"}},
		// The window starting 512 before MinInt64 is not representable and is dropped:
		// the one starting exactly at MinInt64 holds the record.
		{"min int64 hopping power-of-two", hopping(1024, 512, 0, ""), math.MinInt64, []string{"k[-9223372036854775808,-9223372036854774784) n=1"}},
		{"size 1", tumbling(1, 0, ""), math.MinInt64, []string{"k[-9223372036854775808,-9223372036854775807) n=1"}},
		{"huge size", tumbling(math.MaxInt64, 0, ""), -1, []string{"k[-9223372036854775807,0) n=1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := windowsOf(t, c.spec, c.ts); !slices.Equal(got, c.want) {
				t.Fatalf("ts=%d windows\n got  %q\n want %q", c.ts, got, c.want)
			}
		})
	}
}

// A huge grace saturates instead of wrapping into the past (which would make every
// record late), and stream time at MaxInt64 closes everything.
func TestOverflowGuards(t *testing.T) {
	cases := []struct {
		name  string
		spec  stream.Spec
		steps []step
	}{
		{
			name: "huge grace never wraps",
			spec: tumbling(10, math.MaxInt64, stream.EmitFinal),
			steps: []step{
				{ts: 5},
				{ts: math.MaxInt64 - 1, adv: true},
				{ts: 6}, // close saturates at MaxInt64: still open
				{ts: math.MaxInt64, adv: true, want: []string{"k[0,10) n=2 final"}},
			},
		},
		{
			// The window of a record at MaxInt64 ends past MaxInt64; its close saturates
			// to MaxInt64, which that record itself reaches: it is late (documented).
			name: "records near MaxInt64",
			spec: tumbling(10, 5, stream.EmitFinal),
			steps: []step{
				{ts: math.MaxInt64 - 1},
				{ts: math.MaxInt64, late: true, want: []string{"k[9223372036854775800,9223372036854775807) n=1 final"}},
				{ts: 100, late: true},
				{ts: math.MaxInt64, adv: true},
			},
		},
		{
			name: "session near MaxInt64",
			spec: session(10, 10, stream.EmitFinal),
			steps: []step{
				{ts: math.MaxInt64 - 3},
				{ts: math.MaxInt64 - 1},
				{ts: math.MaxInt64, adv: true, want: []string{"k[9223372036854775804,9223372036854775806] n=2 final"}},
			},
		},
		{
			name: "session near MinInt64",
			spec: session(10, 0, stream.EmitFinal),
			steps: []step{
				{ts: math.MinInt64},
				{ts: math.MinInt64 + 10},
				{ts: math.MinInt64 + 21, want: []string{"k[-9223372036854775808,-9223372036854775798] n=2 final"}},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { run(t, c.spec, c.steps) })
	}
}
