package dlq_test

import (
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/dlq"
)

// fakeClock is a manually advanced clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// step is one operation on a breaker and what it must observe.
type step struct {
	op      string // "allow", "ok", "fail", "wait"
	d       time.Duration
	wantOK  bool          // allow: the decision
	wantAt  time.Duration // allow refused: retryAt minus the start time
	wantSta string        // state after the step
}

func TestBreakerTransitions(t *testing.T) {
	probe := dlq.Backoff{Base: time.Second, Factor: 2, Cap: 10 * time.Second}
	s := time.Second
	closed, open, half := dlq.BreakerClosed, dlq.BreakerOpen, dlq.BreakerHalfOpen
	cases := []struct {
		name      string
		threshold int
		rnd       func() float64
		steps     []step
	}{
		{"stays closed below threshold", 3, nil, []step{
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: closed},
			{op: "allow", wantOK: true, wantSta: closed},
		}},
		{"success resets the consecutive count", 3, nil, []step{
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: closed},
			{op: "ok", wantSta: closed},
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: open},
		}},
		{"opens at threshold and refuses until the probe delay", 3, nil, []step{
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: open},
			{op: "allow", wantOK: false, wantAt: 1 * s, wantSta: open},
			{op: "wait", d: 999 * time.Millisecond, wantSta: open},
			{op: "allow", wantOK: false, wantAt: 1 * s, wantSta: open},
		}},
		{"probe success closes", 1, nil, []step{
			{op: "fail", wantSta: open},
			{op: "wait", d: s, wantSta: open},
			{op: "allow", wantOK: true, wantSta: half},
			{op: "allow", wantOK: false, wantAt: 2 * s, wantSta: half}, // one probe at a time
			{op: "ok", wantSta: closed},
			{op: "allow", wantOK: true, wantSta: closed},
		}},
		{"probe failure reopens with longer delays up to cap", 2, nil, []step{
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: open}, // t=0, trip 1: 1s
			{op: "wait", d: s, wantSta: open},
			{op: "allow", wantOK: true, wantSta: half},
			{op: "fail", wantSta: open}, // t=1s, trip 2: 2s
			{op: "allow", wantOK: false, wantAt: 3 * s, wantSta: open},
			{op: "wait", d: 2 * s, wantSta: open},
			{op: "allow", wantOK: true, wantSta: half},
			{op: "fail", wantSta: open}, // t=3s, trip 3: 4s
			{op: "allow", wantOK: false, wantAt: 7 * s, wantSta: open},
			{op: "wait", d: 4 * s, wantSta: open},
			{op: "allow", wantOK: true, wantSta: half},
			{op: "fail", wantSta: open}, // t=7s, trip 4: 8s
			{op: "wait", d: 8 * s, wantSta: open},
			{op: "allow", wantOK: true, wantSta: half},
			{op: "fail", wantSta: open}, // t=15s, trip 5: 16s capped at 10s
			{op: "allow", wantOK: false, wantAt: 25 * s, wantSta: open},
			{op: "wait", d: 10 * s, wantSta: open},
			{op: "allow", wantOK: true, wantSta: half},
			{op: "ok", wantSta: closed},
			// Closing resets the delays: the next trip waits 1s again.
			{op: "fail", wantSta: closed},
			{op: "fail", wantSta: open},
			{op: "allow", wantOK: false, wantAt: 26 * s, wantSta: open},
		}},
		{"lost probe is replaced after the probe delay", 1, nil, []step{
			{op: "fail", wantSta: open},
			{op: "wait", d: s, wantSta: open},
			{op: "allow", wantOK: true, wantSta: half}, // t=1s, probe out until 2s
			{op: "wait", d: 500 * time.Millisecond, wantSta: half},
			{op: "allow", wantOK: false, wantAt: 2 * s, wantSta: half},
			{op: "wait", d: 500 * time.Millisecond, wantSta: half},
			{op: "allow", wantOK: true, wantSta: half},
		}},
		{"results while open are ignored", 1, nil, []step{
			{op: "fail", wantSta: open},
			{op: "ok", wantSta: open},
			{op: "fail", wantSta: open},
			{op: "allow", wantOK: false, wantAt: s, wantSta: open}, // not extended
		}},
		{"probe without jitter ignores rnd", 1, constRnd(0.5), []step{
			{op: "fail", wantSta: open},
			{op: "allow", wantOK: false, wantAt: s, wantSta: open},
		}},
		{"threshold below 1 means 1", 0, nil, []step{
			{op: "fail", wantSta: open},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			start := clk.t
			b := dlq.NewBreaker(c.threshold, probe, clk.now, c.rnd)
			if got := b.State(); got != closed {
				t.Fatalf("new breaker state %q, want closed", got)
			}
			for i, st := range c.steps {
				switch st.op {
				case "allow":
					ok, at := b.Allow()
					if ok != st.wantOK {
						t.Fatalf("step %d: Allow ok = %v, want %v", i, ok, st.wantOK)
					}
					if ok && !at.IsZero() {
						t.Errorf("step %d: allowed with retryAt %v, want zero", i, at)
					}
					if !ok && at.Sub(start) != st.wantAt {
						t.Errorf("step %d: retryAt = start+%v, want start+%v", i, at.Sub(start), st.wantAt)
					}
				case "ok":
					b.Success()
				case "fail":
					b.Failure()
				case "wait":
					clk.advance(st.d)
				}
				if got := b.State(); got != st.wantSta {
					t.Fatalf("step %d (%s): state %q, want %q", i, st.op, got, st.wantSta)
				}
			}
		})
	}
}

func TestBreakerJitteredProbe(t *testing.T) {
	cases := []struct {
		name   string
		r      float64
		wantAt time.Duration
	}{
		{"r=0 full delay", 0, 4 * time.Second},
		{"r=0.5 half delay", 0.5, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(0, 0)}
			probe := dlq.Backoff{Base: 4 * time.Second, Factor: 2, Cap: time.Minute, Jitter: 1}
			b := dlq.NewBreaker(1, probe, clk.now, constRnd(c.r))
			b.Failure()
			ok, at := b.Allow()
			if ok || at.Sub(time.Unix(0, 0)) != c.wantAt {
				t.Errorf("Allow = %v, start+%v; want false, start+%v", ok, at.Sub(time.Unix(0, 0)), c.wantAt)
			}
		})
	}
}

// TestBreakerConcurrentProbe checks that exactly one of many concurrent callers gets the
// half-open probe (run with -race).
func TestBreakerConcurrentProbe(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(0, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := dlq.NewBreaker(1, dlq.Backoff{Base: time.Second, Cap: time.Second}, clock, nil)
	b.Failure()
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	var wg sync.WaitGroup
	var allowed sync.Map
	for i := range 32 {
		wg.Go(func() {
			if ok, _ := b.Allow(); ok {
				allowed.Store(i, true)
			}
		})
	}
	wg.Wait()
	n := 0
	allowed.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Errorf("%d probes allowed, want 1", n)
	}
}
