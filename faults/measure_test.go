package faults

import (
	"net/http"
	"testing"
	"time"
)

// The measurements of the Faults table, on made-up attempts and seconds (no cluster).

func TestLongest503(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	at := func(s float64, status int) Attempt {
		end := t0.Add(time.Duration(s * float64(time.Second)))
		return Attempt{Start: end.Add(-100 * time.Millisecond), End: end, Status: status}
	}
	tests := []struct {
		name string
		atts []Attempt
		want time.Duration
	}{
		{"none", nil, 0},
		{"all accepted", []Attempt{at(1, 202), at(2, 202)}, 0},
		{"two runs, the longer wins", []Attempt{at(1, 202), at(2, 503), at(3, 503), at(4, 202),
			at(5, 504), at(6, 0), at(8.5, 503), at(9, 202)}, 4 * time.Second},
		{"a 4xx does not start or end a run", []Attempt{at(1, 202), at(2, 503), at(3, http.StatusBadRequest), at(5, 202)}, 3 * time.Second},
		{"a run still open at the end counts to the last attempt", []Attempt{at(1, 202), at(2, 503), at(7, 503)}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Longest503(tt.atts); got != tt.want {
				t.Errorf("Longest503 = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestP95(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(100-i) * time.Millisecond // 100 ms .. 1 ms, unsorted
	}
	if got := P95(ds); got != 95*time.Millisecond {
		t.Errorf("P95 of 1..100 ms = %s, want 95ms", got)
	}
	if got := P95(nil); got != 0 {
		t.Errorf("P95(nil) = %s", got)
	}
	if got := P95([]time.Duration{7}); got != 7 {
		t.Errorf("P95 of one = %s", got)
	}
}

func TestRecovery(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	fast, slow := 200*time.Millisecond, 3*time.Second
	// run returns seconds from..to (inclusive) with the given p95.
	run := func(from, to int, p95 time.Duration) []Second {
		var out []Second
		for i := from; i <= to; i++ {
			out = append(out, Second{At: t0.Add(time.Duration(i) * time.Second), Count: 10, P95: p95})
		}
		return out
	}
	cat := func(parts ...[]Second) []Second {
		var out []Second
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	fault, over := t0.Add(10*time.Second), t0.Add(20*time.Second)
	tests := []struct {
		name   string
		secs   []Second
		want   time.Duration
		wantOK bool
	}{
		{"never slow", run(0, 40, fast), 0, true},
		{"slow before the fault only", cat(run(0, 5, slow), run(6, 40, fast)), 0, true},
		{"slow until 27 s", cat(run(0, 10, fast), run(11, 26, slow), run(27, 40, fast)), 17 * time.Second, true},
		{"a later spike does not undo it", cat(run(0, 10, fast), run(11, 22, slow), run(23, 30, fast), run(31, 31, slow), run(32, 40, fast)), 13 * time.Second, true},
		{"four fast seconds are not enough", cat(run(0, 10, fast), run(11, 22, slow), run(23, 26, fast), run(27, 27, slow), run(28, 40, fast)), 18 * time.Second, true},
		{"still slow at the end", cat(run(0, 10, fast), run(11, 40, slow)), 0, false},
		{"a gap breaks a run", cat(run(0, 10, fast), run(11, 22, slow), run(23, 25, fast), run(27, 28, fast)), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Recovery(tt.secs, fault, over, time.Second)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Recovery = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestMax503Bound(t *testing.T) {
	if got := max503Bound(5*time.Second, false); got != 5*time.Second {
		t.Errorf("full suite bound %s, want the goal 5s", got)
	}
	if got := max503Bound(5*time.Second, true); got != 10*time.Second {
		t.Errorf("short suite bound %s, want 10s", got)
	}
	if got := max503Bound(0, true); got != 0 {
		t.Errorf("no goal: bound %s, want none", got)
	}
}
