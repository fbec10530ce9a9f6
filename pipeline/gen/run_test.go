package gen_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// fakeClock is a clock that only moves when Sleep (or a test) advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	sleeps int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

// batchRec is one Send seen by a recorder.
type batchRec struct {
	topic string
	n     int
	at    time.Time
}

// recorder is a Target that records batches and can fail or act on the k-th send.
type recorder struct {
	mu      sync.Mutex
	clock   func() time.Time
	batches []batchRec
	onSend  func(k int) error // k counts from 1; a non-nil error fails the send
}

func (r *recorder) Send(_ context.Context, topic string, events []map[string]any) error {
	r.mu.Lock()
	k := len(r.batches) + 1
	at := time.Time{}
	if r.clock != nil {
		at = r.clock()
	}
	r.batches = append(r.batches, batchRec{topic, len(events), at})
	r.mu.Unlock()
	if r.onSend != nil {
		return r.onSend(k)
	}
	return nil
}

func gens(t *testing.T, topics ...string) map[string]*gen.Generator {
	t.Helper()
	m := map[string]*gen.Generator{}
	for _, topic := range topics {
		m[topic] = mustNew(t, topic, gen.Options{Seed: 1, Now: fixed(t0)})
	}
	return m
}

func TestRunPacing(t *testing.T) {
	tests := []struct {
		name      string
		rate      float64
		batch     int
		max       int
		wantSizes []int
		wantGap   time.Duration // between consecutive sends
	}{
		{"10 batches of 10 at 100/s", 100, 10, 100, []int{10, 10, 10, 10, 10, 10, 10, 10, 10, 10}, 100 * time.Millisecond},
		{"last batch short", 1000, 10, 25, []int{10, 10, 5}, 10 * time.Millisecond},
		{"batch 0 means 1", 4, 0, 3, []int{1, 1, 1}, 250 * time.Millisecond},
		{"unpaced", 0, 7, 20, []int{7, 7, 6}, 0},
		{"infinite rate is unpaced", math.Inf(1), 5, 10, []int{5, 5}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{now: t0}
			rec := &recorder{clock: clk.Now}
			sent, err := gen.Run(t.Context(), rec, gens(t, gen.Clicks), tc.rate, tc.batch, tc.max,
				clk.Now, gen.WithSleep(clk.Sleep))
			if err != nil || sent != tc.max {
				t.Fatalf("Run() = %d, %v; want %d, nil", sent, err, tc.max)
			}
			if len(rec.batches) != len(tc.wantSizes) {
				t.Fatalf("%d batches, want %d", len(rec.batches), len(tc.wantSizes))
			}
			for i, b := range rec.batches {
				if b.n != tc.wantSizes[i] {
					t.Errorf("batch %d has %d events, want %d", i, b.n, tc.wantSizes[i])
				}
				want := t0.Add(time.Duration(i) * tc.wantGap)
				if d := b.at.Sub(want); d < -time.Microsecond || d > time.Microsecond {
					t.Errorf("batch %d sent at +%s, want +%s", i, b.at.Sub(t0), want.Sub(t0))
				}
			}
			if tc.wantGap == 0 && len(clk.slept) != 0 {
				t.Errorf("unpaced run slept %v", clk.slept)
			}
		})
	}
}

func TestRunCatchesUpAfterSlowSend(t *testing.T) {
	clk := &fakeClock{now: t0}
	rec := &recorder{clock: clk.Now}
	rec.onSend = func(k int) error {
		if k == 1 {
			clk.Advance(350 * time.Millisecond) // the first send takes 3.5 batch intervals
		}
		return nil
	}
	sent, err := gen.Run(t.Context(), rec, gens(t, gen.PageViews), 10, 1, 6, clk.Now, gen.WithSleep(clk.Sleep))
	if err != nil || sent != 6 {
		t.Fatalf("Run() = %d, %v", sent, err)
	}
	// Due at 0, 100, 200, 300, 400, 500 ms: batches 2-4 go at once at 350 ms.
	want := []time.Duration{0, 350, 350, 350, 400, 500}
	for i, b := range rec.batches {
		if got := b.at.Sub(t0); got != want[i]*time.Millisecond {
			t.Errorf("batch %d at %s, want %dms", i, got, want[i])
		}
	}
}

func TestRunWeights(t *testing.T) {
	all := []string{gen.PageViews, gen.Clicks, gen.Purchases}
	tests := []struct {
		name string
		opts []gen.RunOption
		want map[string]int
	}{
		{"default 6:3:1", nil, map[string]int{gen.PageViews: 60, gen.Clicks: 30, gen.Purchases: 10}},
		{"equal, ties by topic name", []gen.RunOption{gen.WithWeights(map[string]float64{gen.PageViews: 1, gen.Clicks: 1, gen.Purchases: 1})},
			map[string]int{gen.Clicks: 34, gen.PageViews: 33, gen.Purchases: 33}},
		{"zero and missing excluded", []gen.RunOption{gen.WithWeights(map[string]float64{gen.PageViews: 0, gen.Clicks: 2})},
			map[string]int{gen.Clicks: 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			if _, err := gen.Run(t.Context(), rec, gens(t, all...), 0, 2, 200, nil, tc.opts...); err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, b := range rec.batches {
				got[b.topic]++
			}
			for topic, n := range tc.want {
				if got[topic] != n {
					t.Errorf("%s: %d batches, want %d (all: %v)", topic, got[topic], n, got)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("topics sent %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRunStopsOnContext(t *testing.T) {
	t.Run("cancel during send, unbounded", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		clk := &fakeClock{now: t0}
		rec := &recorder{onSend: func(k int) error {
			if k == 3 {
				cancel()
			}
			return nil
		}}
		sent, err := gen.Run(ctx, rec, gens(t, gen.Clicks), 1000, 10, 0, clk.Now, gen.WithSleep(clk.Sleep))
		if !errors.Is(err, context.Canceled) || sent != 30 {
			t.Fatalf("Run() = %d, %v; want 30, context.Canceled", sent, err)
		}
	})
	t.Run("send fails because of cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		rec := &recorder{onSend: func(k int) error {
			if k == 2 {
				cancel()
				return errors.New("connection reset")
			}
			return nil
		}}
		sent, err := gen.Run(ctx, rec, gens(t, gen.Clicks), 0, 5, 0, nil)
		if !errors.Is(err, context.Canceled) || sent != 5 {
			t.Fatalf("Run() = %d, %v; want 5, context.Canceled", sent, err)
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		rec := &recorder{}
		sent, err := gen.Run(ctx, rec, gens(t, gen.Clicks), 0, 5, 0, nil)
		if !errors.Is(err, context.Canceled) || sent != 0 || len(rec.batches) != 0 {
			t.Fatalf("Run() = %d, %v after %d sends", sent, err, len(rec.batches))
		}
	})
	t.Run("cancel while the real sleep waits", func(t *testing.T) {
		// One event per 1000 s: after the first send Run waits on a real timer, and
		// only cancellation can end it.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		first := make(chan struct{})
		rec := &recorder{onSend: func(k int) error {
			if k == 1 {
				close(first)
			}
			return nil
		}}
		go func() { <-first; cancel() }()
		sent, err := gen.Run(ctx, rec, gens(t, gen.Clicks), 0.001, 1, 0, nil)
		if !errors.Is(err, context.Canceled) || sent != 1 {
			t.Fatalf("Run() = %d, %v; want 1, context.Canceled", sent, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		sent, err := gen.Run(ctx, &recorder{}, gens(t, gen.Clicks), 0.001, 1, 0, nil)
		if !errors.Is(err, context.DeadlineExceeded) || sent != 1 {
			t.Fatalf("Run() = %d, %v; want 1, context.DeadlineExceeded", sent, err)
		}
	})
}

func TestRunSendError(t *testing.T) {
	boom := errors.New("boom")
	rec := &recorder{onSend: func(k int) error {
		if k == 4 {
			return boom
		}
		return nil
	}}
	sent, err := gen.Run(t.Context(), rec, gens(t, gen.Purchases), 0, 3, 100, nil)
	if !errors.Is(err, boom) || sent != 9 {
		t.Fatalf("Run() = %d, %v; want 9, boom", sent, err)
	}
	if !strings.Contains(err.Error(), "purchases") {
		t.Errorf("error %q does not name the topic", err)
	}
}

func TestRunArguments(t *testing.T) {
	tests := []struct {
		name    string
		target  gen.Target
		gens    map[string]*gen.Generator
		rate    float64
		max     int
		opts    []gen.RunOption
		wantErr string
	}{
		{"nil target", nil, gens(t, gen.Clicks), 1, 1, nil, "nil target"},
		{"no generators", &recorder{}, nil, 1, 1, nil, "no generators"},
		{"nil generator", &recorder{}, map[string]*gen.Generator{"clicks": nil}, 1, 1, nil, `"clicks" is nil`},
		{"NaN rate", &recorder{}, gens(t, gen.Clicks), math.NaN(), 1, nil, "rate"},
		{"negative max", &recorder{}, gens(t, gen.Clicks), 1, -1, nil, "max: must be >= 0"},
		{"all weights zero", &recorder{}, gens(t, gen.Clicks), 1, 1,
			[]gen.RunOption{gen.WithWeights(map[string]float64{gen.Clicks: 0})}, "weight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sent, err := gen.Run(t.Context(), tc.target, tc.gens, tc.rate, 1, tc.max, nil, tc.opts...)
			if err == nil || sent != 0 || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Run() = %d, %v; want 0 and an error containing %q", sent, err, tc.wantErr)
			}
		})
	}
}
