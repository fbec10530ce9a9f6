package stream

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// encodeUncached is Encode with the sorted-distinct cache out of the way: the bytes
// every state must encode to.
func encodeUncached(t *testing.T, ws *WindowState) []byte {
	t.Helper()
	cp := *ws
	cp.sorted, cp.added = nil, nil
	return WindowStateCodec{}.Encode(nil, &cp)
}

func TestDistinctCacheEncodesLikeAFullSort(t *testing.T) {
	tests := []struct {
		name string
		// step changes ws (through the plan) before the i-th encode.
		step func(p *measurePlan, ws *WindowState, rng *rand.Rand, i int)
	}{
		{name: "apply only", step: func(p *measurePlan, ws *WindowState, rng *rand.Rand, i int) {
			for range rng.IntN(20) {
				applyOne(p, ws, rng)
			}
		}},
		{name: "no change between encodes", step: func(p *measurePlan, ws *WindowState, rng *rand.Rand, i int) {
			if i%3 == 0 {
				applyOne(p, ws, rng)
			}
		}},
		{name: "session merges", step: func(p *measurePlan, ws *WindowState, rng *rand.Rand, i int) {
			applyOne(p, ws, rng)
			if i%4 == 1 {
				src := p.newState(nil, 0, 10)
				for range 1 + rng.IntN(30) {
					applyOne(p, src, rng)
				}
				p.merge(ws, src)
				applyOne(p, ws, rng)
			}
		}},
		{name: "restored", step: func(p *measurePlan, ws *WindowState, rng *rand.Rand, i int) {
			if i%5 == 2 {
				r, err := WindowStateCodec{}.Decode(WindowStateCodec{}.Encode(nil, ws))
				if err != nil {
					t.Fatal(err)
				}
				*ws = *r
			}
			applyOne(p, ws, rng)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			p := newMeasurePlan([]Measure{{Func: MeasureCountDistinct, Field: "user"}, {Func: MeasureCountDistinct, Field: "n"}})
			ws := p.newState([]string{"g"}, 0, 10)
			for i := range 200 {
				tc.step(&p, ws, rng, i)
				want := encodeUncached(t, ws)
				if got := (WindowStateCodec{}).Encode(nil, ws); !bytes.Equal(got, want) {
					t.Fatalf("encode %d: cached order differs from a full sort\n got %x\nwant %x", i, got, want)
				}
				for j, set := range ws.dist {
					if got := ws.distinctSorted(j); !slices.Equal(got, slices.Sorted(maps.Keys(set))) {
						t.Fatalf("encode %d set %d: sorted %v", i, j, got)
					}
				}
			}
		})
	}
}

// applyOne adds an event with a random user (from a pool, so values repeat) and number.
func applyOne(p *measurePlan, ws *WindowState, rng *rand.Rand) {
	ev := &Event{Values: map[string]any{"user": "u" + string(rune('a'+rng.IntN(26))) + string(rune('a'+rng.IntN(26))), "n": rng.IntN(500)}}
	p.prepare(ev)
	p.apply(ws, ev)
}

func TestMergeSorted(t *testing.T) {
	tests := []struct {
		name   string
		a, b   []string
		want   []string
		wantOK bool
	}{
		{name: "interleaved", a: []string{"a", "c", "e"}, b: []string{"b", "d", "f"}, want: []string{"a", "b", "c", "d", "e", "f"}, wantOK: true},
		{name: "empty old", a: []string{}, b: []string{"x"}, want: []string{"x"}, wantOK: true},
		{name: "duplicate across", a: []string{"a", "b"}, b: []string{"b"}, wantOK: false},
		{name: "duplicate within", a: []string{"a"}, b: []string{"c", "c"}, wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := mergeSorted(tc.a, tc.b, len(tc.a)+len(tc.b))
			if ok != tc.wantOK || (ok && !slices.Equal(got, tc.want)) {
				t.Fatalf("mergeSorted = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
