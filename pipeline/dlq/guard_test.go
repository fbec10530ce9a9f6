package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
)

// guardProbe probes after 1s, 2s, 4s, ... up to 10s, without jitter.
var guardProbe = dlq.Backoff{Base: time.Second, Factor: 2, Cap: 10 * time.Second}

// guardStep is one record through a guarded handler and what must come out.
type guardStep struct {
	advance time.Duration // moved on the clock before the record
	err     error         // what the guarded handler returns when called
	called  bool          // the guarded handler must be called
	wait    time.Duration // > 0: want a circuit-open WaitError until start+wait
	nested  time.Duration // > 0: a second record, sent while this one is out, must wait until start+nested
	passes  bool          // err itself must come back (not a WaitError)
	states  map[string]string
}

func TestGuard(t *testing.T) {
	regErr := dlq.FromDependency("registry", dlq.AsTransient(errors.New("registry timeout")))
	dbErr := dlq.FromDependency("db", dlq.AsTransient(errors.New("db refused")))
	badErr := dlq.FromDependency("registry", dlq.AsPermanent(errors.New("unknown schema")))
	closed, open := dlq.BreakerClosed, dlq.BreakerOpen
	s := time.Second
	cases := []struct {
		name      string
		threshold int
		steps     []guardStep
	}{
		{"opens at threshold, refuses, probes, closes", 3, []guardStep{
			{err: regErr, called: true, passes: true, states: map[string]string{"registry": closed}},
			{err: regErr, called: true, passes: true, states: map[string]string{"registry": closed}},
			// The failure that opens the breaker keeps its record.
			{err: regErr, called: true, wait: 1 * s, states: map[string]string{"registry": open}},
			{called: false, wait: 1 * s},
			{advance: 999 * time.Millisecond, called: false, wait: 1 * s},
			// Probe time: one record goes through, and fails: open again for 2s.
			{advance: time.Millisecond, err: regErr, called: true, wait: 3 * s, states: map[string]string{"registry": open}},
			{advance: time.Second, called: false, wait: 3 * s},
			// Next probe succeeds; a record sent while it is out waits for its deadline.
			{advance: time.Second, called: true, nested: 5 * s, states: map[string]string{"registry": closed}},
			{called: true, states: map[string]string{"registry": closed}},
			// Closed again: the count starts from zero.
			{err: regErr, called: true, passes: true, states: map[string]string{"registry": closed}},
		}},
		{"threshold one opens on the first failure", 1, []guardStep{
			{err: regErr, called: true, wait: 1 * s, states: map[string]string{"registry": open}},
			{advance: time.Second, called: true, states: map[string]string{"registry": closed}},
		}},
		{"success resets the count", 2, []guardStep{
			{err: regErr, called: true, passes: true},
			{called: true},
			{err: regErr, called: true, passes: true, states: map[string]string{"registry": closed}},
			{err: regErr, called: true, wait: 1 * s, states: map[string]string{"registry": open}},
		}},
		{"dependencies count apart, an open one refuses all records", 2, []guardStep{
			{err: regErr, called: true, passes: true},
			{err: dbErr, called: true, passes: true, states: map[string]string{"registry": closed, "db": closed}},
			{err: regErr, called: true, wait: 1 * s, states: map[string]string{"registry": open, "db": closed}},
			{called: false, wait: 1 * s},
			{err: dbErr, called: false, wait: 1 * s, states: map[string]string{"registry": open, "db": closed}},
		}},
		{"unnamed dependencies share the default breaker", 2, []guardStep{
			{err: dlq.AsTransient(errors.New("timeout")), called: true, passes: true},
			{err: errOther, called: true, wait: 1 * s, states: map[string]string{dlq.DefaultDependency: open}},
		}},
		{"given-up records count by their dependency", 2, []guardStep{
			{err: &dlq.AttemptsError{Attempts: 3, Err: dbErr}, called: true, passes: true},
			{err: fmt.Errorf("enrich: %w", &dlq.AttemptsError{Attempts: 3, Err: dbErr}), called: true, wait: 1 * s,
				states: map[string]string{"db": open}},
		}},
		{"permanent errors do not count", 1, []guardStep{
			{err: badErr, called: true, passes: true, states: map[string]string{}},
			{err: dlq.AsPermanent(errors.New("bad amount")), called: true, passes: true, states: map[string]string{}},
			{called: true, states: map[string]string{}},
		}},
		{"wait errors pass through uncounted", 1, []guardStep{
			{err: &dlq.WaitError{Until: routeNow.Add(time.Minute), Reason: "not-before"}, called: true, passes: true,
				states: map[string]string{}},
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: routeNow}
			bs := dlq.NewBreakers(tt.threshold, guardProbe, clk.now, nil)
			var (
				calls  int
				result error
				nested error
				send   bool
				h      dlq.Handler
			)
			output := &kgo.Record{Topic: "purchases.clean", Value: []byte("out")}
			h = dlq.Guard(bs)(func(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
				calls++
				if send {
					send = false
					nested, _ = run(ctx, h, failedSource())
				}
				if result == nil {
					emit(output)
				}
				return result
			})
			for i, st := range tt.steps {
				clk.advance(st.advance)
				calls, result, nested, send = 0, st.err, nil, st.nested > 0
				err, out := run(t.Context(), h, failedSource())
				if got := calls > 0; got != st.called {
					t.Errorf("step %d: handler called %d times, want called %v", i, calls, st.called)
				}
				switch {
				case st.wait > 0:
					w, ok := dlq.AsWait(err)
					if !ok {
						t.Fatalf("step %d: error = %v, want a WaitError", i, err)
					}
					if want := routeNow.Add(st.wait); !w.Until.Equal(want) || w.Reason != "circuit-open" {
						t.Errorf("step %d: wait until +%s (%s), want +%s (circuit-open)", i, w.Until.Sub(routeNow), w.Reason, st.wait)
					}
					if st.called && !errors.Is(w, st.err) {
						t.Errorf("step %d: WaitError cause = %v, want %v", i, w.Err, st.err)
					}
				case st.passes:
					if err != st.err {
						t.Errorf("step %d: error = %v, want %v itself", i, err, st.err)
					}
				default:
					if err != nil {
						t.Errorf("step %d: error = %v, want nil", i, err)
					}
					if len(out) != 1 || out[0] != output {
						t.Errorf("step %d: emitted %v, want the handler's output", i, out)
					}
				}
				if st.nested > 0 {
					w, ok := dlq.AsWait(nested)
					if !ok || !w.Until.Equal(routeNow.Add(st.nested)) {
						t.Errorf("step %d: record during the probe got %v, want a wait until +%s", i, nested, st.nested)
					}
				}
				if st.states != nil {
					if got := bs.States(); !maps.Equal(got, st.states) {
						t.Errorf("step %d: states = %v, want %v", i, got, st.states)
					}
				}
			}
		})
	}
}

func TestGuardContextDone(t *testing.T) {
	clk := &fakeClock{t: routeNow}
	bs := dlq.NewBreakers(1, guardProbe, clk.now, nil)
	errT := dlq.FromDependency("registry", dlq.AsTransient(errors.New("cancelled mid-call")))
	h := dlq.Guard(bs)(failWith(errT))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err, _ := run(ctx, h, failedSource()); err != errT {
		t.Errorf("error = %v, want %v itself", err, errT)
	}
	if got := bs.States(); len(got) != 0 {
		t.Errorf("states = %v, want no breaker: a failure while ctx is done says nothing", got)
	}
}

// Under Failures, the failure that opens a breaker and the refused records are kept (the
// WaitError passes), not retried or dead-lettered.
func TestGuardUnderFailures(t *testing.T) {
	clk := &fakeClock{t: routeNow}
	var obs observed
	f := newRoute(routePolicy(), clk.now, &obs)
	bs := dlq.NewBreakers(2, guardProbe, clk.now, nil)
	h := f(dlq.Guard(bs)(failWith(dlq.FromDependency("registry", dlq.AsTransient(errors.New("timeout"))))))

	err, out := run(t.Context(), h, failedSource())
	if err != nil || len(out) != 1 || out[0].Topic != "_sluice.retry.5s" {
		t.Fatalf("first failure: error %v, %d records; want it in _sluice.retry.5s", err, len(out))
	}
	for i := range 2 {
		err, out = run(t.Context(), h, failedSource())
		if w, ok := dlq.AsWait(err); !ok || w.Reason != "circuit-open" || len(out) != 0 {
			t.Errorf("record %d after the opening: error %v, %d records; want a circuit-open wait and none", i, err, len(out))
		}
	}
	if len(obs.retries) != 1 || len(obs.letters) != 0 {
		t.Errorf("%d retries, %d letters; want 1, 0", len(obs.retries), len(obs.letters))
	}
}

func TestDependencyOf(t *testing.T) {
	base := errors.New("timeout")
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, dlq.DefaultDependency},
		{"unnamed", base, dlq.DefaultDependency},
		{"named", dlq.FromDependency("registry", base), "registry"},
		{"empty name", dlq.FromDependency("", base), dlq.DefaultDependency},
		{"classified outside", dlq.AsTransient(dlq.FromDependency("db", base)), "db"},
		{"classified inside", dlq.FromDependency("db", dlq.AsTransient(base)), "db"},
		{"inside attempts and wrapping", fmt.Errorf("enrich: %w", &dlq.AttemptsError{Attempts: 2, Err: dlq.FromDependency("db", base)}), "db"},
		{"outermost name wins", dlq.FromDependency("enricher", dlq.FromDependency("db", base)), "enricher"},
		{"joined", errors.Join(base, dlq.FromDependency("cache", base)), "cache"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if got := dlq.DependencyOf(tt.err); got != tt.want {
				t.Errorf("DependencyOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
	if dlq.DefaultDependency != "default" {
		t.Errorf("DefaultDependency = %q, want default", dlq.DefaultDependency)
	}
}

func TestFromDependency(t *testing.T) {
	if err := dlq.FromDependency("registry", nil); err != nil {
		t.Errorf("FromDependency(nil) = %v, want nil", err)
	}
	base := dlq.AsPermanent(errors.New("unknown schema 7"))
	err := dlq.FromDependency("registry", base)
	// The dependency labels the breaker; the message is the cause's.
	if got, want := err.Error(), base.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, base) || dlq.ClassOf(err) != dlq.Permanent {
		t.Errorf("FromDependency hides the cause or its class: Is %v, class %s", errors.Is(err, base), dlq.ClassOf(err))
	}
	var d *dlq.DependencyError
	if !errors.As(err, &d) || d.Dependency != "registry" || d.Unwrap() != base {
		t.Errorf("As DependencyError = %+v", d)
	}
}

func TestBreakersFor(t *testing.T) {
	clk := &fakeClock{t: routeNow}
	bs := dlq.NewBreakers(1, guardProbe, clk.now, nil)
	if got := bs.States(); len(got) != 0 {
		t.Errorf("new Breakers has states %v", got)
	}
	a := bs.For("a")
	if bs.For("a") != a {
		t.Error("For returned a new breaker for a known dependency")
	}
	if bs.For("b") == a {
		t.Error("For returned the same breaker for two dependencies")
	}
	a.Failure()
	want := map[string]string{"a": dlq.BreakerOpen, "b": dlq.BreakerClosed}
	if got := bs.States(); !maps.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
}

// With two open breakers, a record due for A's probe but refused by B must not spend
// A's probe: A stays open and probes as soon as B lets records through.
func TestGuardDoesNotWasteProbes(t *testing.T) {
	for range 50 { // map order varies: repeat
		clk := &fakeClock{t: routeNow}
		probe := dlq.Backoff{Base: time.Second, Factor: 2, Cap: 10 * time.Second}
		bs := dlq.NewBreakers(1, probe, clk.now, nil)
		bs.For("a").Failure() // open until +1s
		clk.advance(500 * time.Millisecond)
		bs.For("b").Failure() // open until +1.5s
		clk.advance(500 * time.Millisecond)
		calls := 0
		h := dlq.Guard(bs)(func(context.Context, *kgo.Record, func(*kgo.Record)) error { calls++; return nil })
		err := h(context.Background(), &kgo.Record{}, func(*kgo.Record) {})
		w, ok := dlq.AsWait(err)
		if !ok || !w.Until.Equal(routeNow.Add(1500*time.Millisecond)) || calls != 0 {
			t.Fatalf("at +1s: err %v, calls %d; want a wait until +1.5s", err, calls)
		}
		if st := bs.States(); st["a"] != dlq.BreakerOpen {
			t.Fatalf("breaker a is %s after a refused record, want open (probe not spent)", st["a"])
		}
		clk.advance(500 * time.Millisecond)
		if err := h(context.Background(), &kgo.Record{}, func(*kgo.Record) {}); err != nil || calls != 1 {
			t.Fatalf("at +1.5s: err %v, calls %d; want the probe through", err, calls)
		}
		if st := bs.States(); st["a"] != dlq.BreakerClosed || st["b"] != dlq.BreakerClosed {
			t.Fatalf("after a successful probe: %v, want both closed", st)
		}
	}
}
