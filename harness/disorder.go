package harness

import (
	"fmt"
	"math/rand/v2"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// DisorderOptions shapes a sequence of window-engine input events with controlled
// disorder. Zero values take the defaults noted on each field.
type DisorderOptions struct {
	// Seed makes the sequence reproducible: the same options give the same events.
	Seed uint64
	// Sources is the number of source partitions, "src/0".."src/N-1" (default 1).
	Sources int
	// Groups is the number of groups, "g0".."gN-1", picked uniformly (default 1).
	Groups int
	// Events is the number of events.
	Events int
	// Start is the event time (Unix ms) the sequence starts around; it may be negative.
	Start int64
	// Step is the mean time between consecutive events across all sources, in ms: steps
	// are uniform in [0, 2*Step] (default 1000).
	Step int64
	// MaxDisorder is how far (ms) an on-time event may be behind the largest time its own
	// source has produced so far: every on-time event is at most MaxDisorder behind.
	MaxDisorder int64
	// LateFraction is the fraction of events made deliberately late: more than
	// MaxDisorder+Grace behind their own source's largest time so far. An event whose
	// source has produced nothing yet is never made late.
	LateFraction float64
	// Grace is the window grace the late events must exceed (with MaxDisorder).
	Grace int64
	// LateExtra pushes late events further back by this many ms, e.g. the window size
	// (hopping) or the gap (sessions), so that all their windows are closed.
	LateExtra int64
	// SourceLag delays source k's times by k*SourceLag ms, so sources progress unevenly
	// (a lagging partition); disorder is still measured within each source.
	SourceLag int64
	// Users is the number of distinct "user_id" values, "u-0".."u-N-1" (default 10).
	Users int
	// NullFraction is the probability that an event lacks "amount", and, drawn separately,
	// that it lacks "user_id".
	NullFraction float64
}

// DisorderSourceIDs returns the source ids Disorder uses for n sources, for Spec.Sources.
func DisorderSourceIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("src/%d", i)
	}
	return ids
}

// Disorder generates events in arrival order. Each event has Source "src/k", a group
// "gN" (GroupValues {"gN"}, Group its stream.GroupKey), Values "amount" (float64 with
// cents) and "user_id" (string), a strictly increasing IngestTS (arrival order) and a
// unique EventID "ev-<index>".
//
// Times follow a cursor that moves by Step on average; an on-time event of source k is
// the cursor minus k*SourceLag minus a uniform disorder in [0, MaxDisorder], so it is at
// most MaxDisorder behind anything its source produced before. A late event is MaxDisorder
// + Grace + 1 + a uniform extra in [0, MaxDisorder+Grace+Step] behind its source's
// largest time so far, and LateExtra further.
func Disorder(o DisorderOptions) []stream.Event {
	o.Sources = max(o.Sources, 1)
	o.Groups = max(o.Groups, 1)
	if o.Users <= 0 {
		o.Users = 10
	}
	if o.Step <= 0 {
		o.Step = 1000
	}
	o.MaxDisorder = max(o.MaxDisorder, 0)
	o.Grace = max(o.Grace, 0)
	o.LateExtra = max(o.LateExtra, 0)

	r := rand.New(rand.NewPCG(o.Seed, 0x736c75696365)) // "sluice"
	sources := DisorderSourceIDs(o.Sources)
	groupKeys := make([]string, o.Groups)
	for g := range groupKeys {
		groupKeys[g] = stream.GroupKey([]string{disorderGroup(g)})
	}
	maxSeen := make([]int64, o.Sources)
	seen := make([]bool, o.Sources)

	events := make([]stream.Event, 0, o.Events)
	cursor := o.Start
	for i := range o.Events {
		cursor += r.Int64N(2*o.Step + 1)
		src := r.IntN(o.Sources)
		g := r.IntN(o.Groups)

		var t int64
		if seen[src] && r.Float64() < o.LateFraction {
			t = maxSeen[src] - o.MaxDisorder - o.Grace - 1 - o.LateExtra - r.Int64N(o.MaxDisorder+o.Grace+o.Step+1)
		} else {
			t = cursor - int64(src)*o.SourceLag - r.Int64N(o.MaxDisorder+1)
		}
		if !seen[src] || t > maxSeen[src] {
			maxSeen[src], seen[src] = t, true
		}

		values := map[string]any{}
		if r.Float64() >= o.NullFraction {
			values["amount"] = float64(r.IntN(100000)) / 100
		}
		if r.Float64() >= o.NullFraction {
			values["user_id"] = fmt.Sprintf("u-%d", r.IntN(o.Users))
		}
		events = append(events, stream.Event{
			Source:      sources[src],
			Time:        t,
			Group:       groupKeys[g],
			GroupValues: []string{disorderGroup(g)},
			Values:      values,
			IngestTS:    int64(i) + 1,
			EventID:     fmt.Sprintf("ev-%d", i),
		})
	}
	return events
}

func disorderGroup(g int) string { return fmt.Sprintf("g%d", g) }
