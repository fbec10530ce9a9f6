package harness_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/stream"
)

// kev is an event of group "k" for the engine (whose group key comes from GroupKey).
func kev(src string, t int64) stream.Event {
	e := oev(src, t, "k")
	e.Group = stream.GroupKey(e.GroupValues)
	return e
}

func TestDriverGoldenA(t *testing.T) {
	cases := []struct {
		name    string
		restart bool
	}{
		{"no restart", false},
		{"restart after every call", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := harness.NewDriver(t, tumblingSpec(10, 5, "p0"))
			for _, ts := range []int64{1, 9, 10, 3, 15, 4, 25} {
				d.Pipe(kev("p0", ts))
				if tc.restart {
					d.Restart()
				}
			}
			var got []string
			for _, r := range d.Outputs() {
				got = append(got, strings.Replace(resultBrief(r), stream.GroupKey([]string{"k"}), "k", 1))
			}
			if want := []string{"k [0,10) n=3 final", "k [10,20) n=2 final"}; !slices.Equal(got, want) {
				t.Errorf("outputs %q, want %q", got, want)
			}
			if late := d.LateEvents(); len(late) != 1 || late[0].Time != 4 {
				t.Errorf("late events %+v, want the one at 4", late)
			}
			if rs := d.LateReasons(); len(rs) != 1 || rs[0].StreamTime != 15 || rs[0].Reason == "" {
				t.Errorf("late reasons %+v, want one at stream time 15", rs)
			}
			if d.StreamTime() != 25 || d.Watermark("p0") != 25 || d.OpenWindows() != 1 {
				t.Errorf("stream time %d, watermark %d, open %d; want 25, 25, 1", d.StreamTime(), d.Watermark("p0"), d.OpenWindows())
			}
		})
	}
}

// TestDriverRestartKeepsTime checks docs/DESIGN.md#windows-and-watermarks across a restart: the
// watermarks are restored too, so an event late before the restart is late after it.
func TestDriverRestartKeepsTime(t *testing.T) {
	d := harness.NewDriver(t, tumblingSpec(10, 0, "p0", "p1"))
	d.Pipe(kev("p0", 5))
	d.Advance("p1", 30)
	d.Pipe(kev("p0", 40)) // stream time 30 closes [0,10)
	d.Restart()
	if d.StreamTime() != 30 || d.Watermark("p0") != 40 || d.Watermark("p1") != 30 {
		t.Fatalf("after restart: stream time %d, p0 %d, p1 %d; want 30, 40, 30", d.StreamTime(), d.Watermark("p0"), d.Watermark("p1"))
	}
	d.Pipe(kev("p1", 7))
	if len(d.LateEvents()) != 1 || len(d.Outputs()) != 1 {
		t.Errorf("late %d, outputs %d; want 1 and 1", len(d.LateEvents()), len(d.Outputs()))
	}
	if d.Restarts() != 1 {
		t.Errorf("restarts %d", d.Restarts())
	}
}

func TestDriverStateKeys(t *testing.T) {
	d := harness.NewDriver(t, tumblingSpec(10, 20, "p0", "p1"))
	if w, m := d.StateKeys(); w != 0 || m != 0 {
		t.Fatalf("fresh driver state %d/%d", w, m)
	}
	d.PipeAll(kev("p0", 1), kev("p0", 11), kev("p1", 21))
	if w, m := d.StateKeys(); w != d.OpenWindows() || w != 3 || m != 2 {
		t.Errorf("state keys %d windows, %d watermarks; want 3 (= open %d), 2", w, m, d.OpenWindows())
	}
	d.Advance("p0", 100)
	d.Advance("p1", 100)
	if w, m := d.StateKeys(); w != 0 || m != 2 || d.OpenWindows() != 0 {
		t.Errorf("after closing all: %d windows (open %d), %d watermarks; want 0, 2", w, d.OpenWindows(), m)
	}
	d.Restart()
	if d.OpenWindows() != 0 || d.StreamTime() != 100 || len(d.Outputs()) != 3 {
		t.Errorf("after restart: open %d, stream time %d, outputs %d", d.OpenWindows(), d.StreamTime(), len(d.Outputs()))
	}
}

func TestNewDriverRejectsBadSpec(t *testing.T) {
	defer func() {
		if _, ok := recover().(fatalError); !ok {
			t.Error("NewDriver accepted a tumbling window of size 0")
		}
	}()
	harness.NewDriver(fatalTB{t}, tumblingSpec(0, 0, "p0"))
}
