package dlq_test

import (
	"math"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/dlq"
)

func constRnd(r float64) func() float64 { return func() float64 { return r } }

func TestBackoffScheduleNoJitter(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name string
		b    dlq.Backoff
		want []time.Duration // Delay(1), Delay(2), ...
	}{
		{"defaults", dlq.DefaultBackoff(), []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms}},
		{"zero value takes defaults", dlq.Backoff{}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms}},
		{"factor 3", dlq.Backoff{Base: 10 * ms, Factor: 3, Cap: time.Second}, []time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, time.Second}},
		{"factor 1.5", dlq.Backoff{Base: 100 * ms, Factor: 1.5, Cap: time.Second}, []time.Duration{100 * ms, 150 * ms, 225 * ms}},
		{"factor 1 is constant", dlq.Backoff{Base: 50 * ms, Factor: 1, Cap: time.Second}, []time.Duration{50 * ms, 50 * ms, 50 * ms}},
		{"factor below 1 takes default", dlq.Backoff{Base: 50 * ms, Factor: 0.5, Cap: time.Second}, []time.Duration{50 * ms, 100 * ms, 200 * ms}},
		{"cap below base wins", dlq.Backoff{Base: time.Second, Factor: 2, Cap: 300 * ms}, []time.Duration{300 * ms, 300 * ms}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i, want := range c.want {
				if got := c.b.Delay(i+1, constRnd(0)); got != want {
					t.Errorf("Delay(%d) = %v, want %v", i+1, got, want)
				}
			}
			if got := c.b.Delay(1, nil); got != c.want[0] {
				t.Errorf("Delay(1, nil rnd) = %v, want %v", got, c.want[0])
			}
		})
	}
}

func TestBackoffEdges(t *testing.T) {
	b := dlq.DefaultBackoff()
	cases := []struct {
		name    string
		b       dlq.Backoff
		attempt int
		rnd     func() float64
		want    time.Duration
	}{
		{"attempt 0 is attempt 1", b, 0, constRnd(0), 100 * time.Millisecond},
		{"negative attempt is attempt 1", b, -5, constRnd(0), 100 * time.Millisecond},
		{"huge attempt saturates at cap", b, math.MaxInt, constRnd(0), 2 * time.Second},
		{"attempt 64 saturates at cap", b, 64, constRnd(0), 2 * time.Second},
		{"huge cap does not overflow", dlq.Backoff{Base: time.Second, Factor: 10, Cap: time.Duration(math.MaxInt64)}, math.MaxInt, constRnd(0), time.Duration(math.MaxInt64)},
		{"full jitter r=1 is zero", b, 3, constRnd(1), 0},
		{"full jitter r=0.5 halves", b, 3, constRnd(0.5), 200 * time.Millisecond},
		{"half jitter r=1", dlq.Backoff{Base: 100 * time.Millisecond, Factor: 2, Cap: time.Second, Jitter: 0.5}, 2, constRnd(1), 100 * time.Millisecond},
		{"no jitter ignores rnd", dlq.Backoff{Base: 100 * time.Millisecond, Factor: 2, Cap: time.Second}, 2, constRnd(0.9), 200 * time.Millisecond},
		{"rnd above 1 clamps", b, 2, constRnd(7), 0},
		{"rnd negative clamps", b, 2, constRnd(-3), 200 * time.Millisecond},
		{"rnd NaN is 0", b, 2, constRnd(math.NaN()), 200 * time.Millisecond},
		{"jitter above 1 clamps", dlq.Backoff{Jitter: 5}, 1, constRnd(0.5), 50 * time.Millisecond},
		{"jitter negative is none", dlq.Backoff{Jitter: -1}, 1, constRnd(0.5), 100 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.b.Delay(c.attempt, c.rnd); got != c.want {
				t.Errorf("Delay(%d) = %v, want %v", c.attempt, got, c.want)
			}
		})
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	cases := []struct {
		name   string
		b      dlq.Backoff
		jitter float64
	}{
		{"full jitter", dlq.DefaultBackoff(), 1},
		{"quarter jitter", dlq.Backoff{Base: 10 * time.Millisecond, Factor: 3, Cap: 5 * time.Second, Jitter: 0.25}, 0.25},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for attempt := 1; attempt <= 12; attempt++ {
				hi := c.b.Delay(attempt, constRnd(0))
				lo := time.Duration(float64(hi) * (1 - c.jitter))
				for i := 0; i <= 100; i++ {
					r := float64(i) / 100
					got := c.b.Delay(attempt, constRnd(r))
					if got < lo-1 || got > hi {
						t.Fatalf("Delay(%d, r=%v) = %v, want in [%v, %v]", attempt, r, got, lo, hi)
					}
				}
			}
		})
	}
}
