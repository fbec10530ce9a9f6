package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// fakeSleep records the requested delays and never waits; it fails once ctx is done.
type fakeSleep struct{ slept []time.Duration }

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.slept = append(f.slept, d)
	return nil
}

// flaky fails its first fails calls with err, emitting a marked output each time, then
// succeeds emitting a good output.
type flaky struct {
	fails int
	err   error
	calls int
}

func (f *flaky) handle(_ context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
	f.calls++
	if f.calls <= f.fails {
		emit(&kgo.Record{Topic: "out", Value: []byte("bad-" + strconv.Itoa(f.calls))})
		emit(&kgo.Record{Topic: "out", Value: []byte("bad2-" + strconv.Itoa(f.calls))})
		return f.err
	}
	emit(&kgo.Record{Topic: "out", Key: rec.Key, Value: []byte("good-1")})
	emit(&kgo.Record{Topic: "out", Key: rec.Key, Value: []byte("good-2")})
	return nil
}

func schedule(b dlq.Backoff, n int, rnd func() float64) []time.Duration {
	var s []time.Duration
	for i := 1; i <= n; i++ {
		s = append(s, b.Delay(i, rnd))
	}
	return s
}

func values(recs []*kgo.Record) []string {
	var vs []string
	for _, r := range recs {
		vs = append(vs, string(r.Value))
	}
	return vs
}

func TestRetryInPlace(t *testing.T) {
	b := dlq.DefaultBackoff()
	transient := dlq.AsTransient(errors.New("registry timeout"))
	unclassified := errors.New("connection refused")
	permanent := dlq.AsPermanent(errors.New("bad schema id"))
	rnd := constRnd(0.25)
	cases := []struct {
		name        string
		maxAttempts int
		maxTotal    time.Duration
		fails       int
		err         error
		wantCalls   int
		wantErr     error // nil: success
		wantSlept   []time.Duration
	}{
		{"ok first time", 5, 0, 0, transient, 1, nil, nil},
		{"heals after 3 attempts", 5, 0, 2, transient, 3, nil, schedule(b, 2, rnd)},
		{"heals on last attempt", 5, 0, 4, transient, 5, nil, schedule(b, 4, rnd)},
		{"unclassified is retried", 5, 0, 1, unclassified, 2, nil, schedule(b, 1, rnd)},
		{"never heals", 5, 0, 1 << 30, transient, 5, transient, schedule(b, 4, rnd)},
		{"one attempt means no retry", 1, 0, 1 << 30, transient, 1, transient, nil},
		{"zero attempts means one", 0, 0, 1 << 30, transient, 1, transient, nil},
		{"permanent not retried", 5, 0, 1 << 30, permanent, 1, permanent, nil},
		// Delays with r=0.25: 75ms, 150ms, 300ms, 600ms. 75+150+300 = 525ms <= 600ms,
		// the fourth would bring it to 1125ms.
		{"maxTotal bounds the budget", 10, 600 * time.Millisecond, 1 << 30, transient, 4, transient, schedule(b, 3, rnd)},
		{"maxTotal exactly reached is allowed", 10, 525 * time.Millisecond, 1 << 30, transient, 4, transient, schedule(b, 3, rnd)},
		{"maxTotal below first delay", 10, time.Millisecond, 1 << 30, transient, 1, transient, nil},
		{"maxTotal heals within budget", 10, 600 * time.Millisecond, 2, transient, 3, nil, schedule(b, 2, rnd)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &flaky{fails: c.fails, err: c.err}
			s := &fakeSleep{}
			h := dlq.RetryInPlace(dlq.RetryOptions{Backoff: b, MaxAttempts: c.maxAttempts, MaxTotal: c.maxTotal, Sleep: s.sleep, Rand: rnd})(f.handle)
			var out []*kgo.Record
			err := h(t.Context(), &kgo.Record{Key: []byte("k")}, func(r *kgo.Record) { out = append(out, r) })
			if f.calls != c.wantCalls {
				t.Errorf("calls = %d, want %d", f.calls, c.wantCalls)
			}
			if !slices.Equal(s.slept, c.wantSlept) {
				t.Errorf("slept %v, want %v", s.slept, c.wantSlept)
			}
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				if got, want := values(out), []string{"good-1", "good-2"}; !slices.Equal(got, want) {
					t.Errorf("outputs %q, want %q", got, want)
				}
				return
			}
			if len(out) != 0 {
				t.Errorf("failed attempts leaked outputs %q", values(out))
			}
			var ae *dlq.AttemptsError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want *AttemptsError", err, err)
			}
			if ae.Attempts != c.wantCalls {
				t.Errorf("Attempts = %d, want %d", ae.Attempts, c.wantCalls)
			}
			if !errors.Is(err, c.wantErr) {
				t.Errorf("err = %v, does not wrap %v", err, c.wantErr)
			}
			if got, want := dlq.ClassOf(err), dlq.ClassOf(c.wantErr); got != want {
				t.Errorf("ClassOf = %q, want %q", got, want)
			}
		})
	}
}

func TestRetryInPlaceContextCancelled(t *testing.T) {
	transient := dlq.AsTransient(errors.New("timeout"))
	cause := errors.New("rebalance")
	cases := []struct {
		name  string
		sleep func(cancel context.CancelCauseFunc) func(context.Context, time.Duration) error
		want  error
	}{
		{"fake sleep cancelled while sleeping", func(cancel context.CancelCauseFunc) func(context.Context, time.Duration) error {
			return func(ctx context.Context, _ time.Duration) error {
				cancel(context.Canceled)
				<-ctx.Done()
				return ctx.Err()
			}
		}, context.Canceled},
		{"real Sleep with ctx cancelled by the handler", func(context.CancelCauseFunc) func(context.Context, time.Duration) error {
			return dlq.Sleep
		}, cause},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(t.Context())
			t.Cleanup(func() { cancel(nil) })
			calls := 0
			next := func(context.Context, *kgo.Record, func(*kgo.Record)) error {
				calls++
				if c.want == cause {
					cancel(cause)
				}
				return transient
			}
			// An hour-long backoff: only cancellation can end the sleep.
			h := dlq.RetryInPlace(dlq.RetryOptions{Backoff: dlq.Backoff{Base: time.Hour, Cap: time.Hour}, MaxAttempts: 5, Sleep: c.sleep(cancel)})(next)
			err := h(ctx, &kgo.Record{}, func(*kgo.Record) { t.Error("unexpected output") })
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var ae *dlq.AttemptsError
			if errors.As(err, &ae) {
				t.Errorf("err is an AttemptsError, want the bare ctx error so the record is not routed")
			}
			if calls != 1 {
				t.Errorf("calls = %d, want 1", calls)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	done, cancel := context.WithCancel(t.Context())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"zero delay live ctx", t.Context(), 0, nil},
		{"negative delay live ctx", t.Context(), -time.Second, nil},
		{"done ctx long delay", done, time.Hour, context.Canceled},
		{"done ctx zero delay", done, 0, context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := dlq.Sleep(c.ctx, c.d); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Errorf("Sleep = %v, want %v", err, c.want)
			}
		})
	}
}

func TestAttemptsError(t *testing.T) {
	base := dlq.AsTransient(errors.New("timeout"))
	err := fmt.Errorf("stage enrich: %w", &dlq.AttemptsError{Attempts: 3, Err: base})
	var ae *dlq.AttemptsError
	if !errors.As(err, &ae) || ae.Attempts != 3 {
		t.Fatalf("errors.As = %v, %+v", err, ae)
	}
	if !errors.Is(err, base) || !errors.Is(err, dlq.ErrTransient) {
		t.Errorf("%v does not unwrap to its last error", err)
	}
	if got, want := ae.Error(), "after 3 attempts: timeout"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func attemptsHeader(vs ...string) *kgo.Record {
	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "other", Value: []byte("9")}}}
	for _, v := range vs {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: wire.HeaderAttempts, Value: []byte(v)})
	}
	return r
}

func TestAttemptsOf(t *testing.T) {
	cases := []struct {
		name string
		rec  *kgo.Record
		want int
	}{
		{"nil record", nil, 0},
		{"absent", attemptsHeader(), 0},
		{"one", attemptsHeader("1"), 1},
		{"large", attemptsHeader("12345"), 12345},
		{"last wins", attemptsHeader("2", "4"), 4},
		{"garbage", attemptsHeader("three"), 0},
		{"empty", attemptsHeader(""), 0},
		{"negative", attemptsHeader("-2"), 0},
		{"spaces", attemptsHeader(" 2"), 0},
		{"overflow", attemptsHeader("99999999999999999999999"), 0},
		{"garbage after good", attemptsHeader("3", "x"), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := wire.Attempts(c.rec); got != c.want {
				t.Errorf("AttemptsOf = %d, want %d", got, c.want)
			}
		})
	}
}

func TestAttemptsRoundTripThroughRecord(t *testing.T) {
	letter := dlq.Record(&kgo.Record{Topic: "orders"}, "orders.dlq", dlq.Letter{Attempts: 4})
	if got := wire.Attempts(letter); got != 4 {
		t.Errorf("AttemptsOf(dead letter) = %d, want 4", got)
	}
}

func TestTierFor(t *testing.T) {
	tiers := []time.Duration{time.Second, 10 * time.Second, time.Minute}
	cases := []struct {
		name     string
		tiers    []time.Duration
		attempts int
		want     time.Duration
		wantOK   bool
	}{
		{"first failure goes to tier 0", tiers, 1, time.Second, true},
		{"second failure goes to tier 1", tiers, 2, 10 * time.Second, true},
		{"last tier", tiers, 3, time.Minute, true},
		{"exhausted goes to DLQ", tiers, 4, 0, false},
		{"far past exhausted", tiers, 1 << 40, 0, false},
		{"zero attempts is first", tiers, 0, time.Second, true},
		{"negative attempts is first", tiers, -1, time.Second, true},
		{"no tiers goes to DLQ", nil, 1, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := dlq.TierFor(c.tiers, c.attempts)
			if got != c.want || ok != c.wantOK {
				t.Errorf("TierFor(%d) = %v, %v; want %v, %v", c.attempts, got, ok, c.want, c.wantOK)
			}
		})
	}
}

// FuzzAttemptsOf checks the header parser never panics and never returns a negative count.
func FuzzAttemptsOf(f *testing.F) {
	for _, s := range []string{"", "0", "1", "-1", "+3", "1e3", "0x10", "99999999999999999999", "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		n := wire.Attempts(&kgo.Record{Headers: []kgo.RecordHeader{{Key: wire.HeaderAttempts, Value: v}}})
		if n < 0 {
			t.Fatalf("AttemptsOf(%q) = %d", v, n)
		}
		if n > 0 && strconv.Itoa(n) != string(v) && "+"+strconv.Itoa(n) != string(v) && !isZeroPadded(string(v), n) {
			t.Fatalf("AttemptsOf(%q) = %d, not what the header says", v, n)
		}
	})
}

func isZeroPadded(s string, n int) bool {
	for len(s) > 1 && (s[0] == '0' || s[0] == '+') {
		s = s[1:]
	}
	return s == strconv.Itoa(n)
}
