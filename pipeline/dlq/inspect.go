package dlq

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxReasonLen bounds a Summary reason so that messages differing only in detail group.
const maxReasonLen = 80

// unknown stands for a missing class, stage or reason header in a Summary.
const unknown = "unknown"

// Summary describes the contents of a dead-letter topic, for `sluice dlq inspect`.
type Summary struct {
	// Total is the number of dead letters.
	Total int `json:"total"`
	// ByClass counts dead letters by sluice-error-class ("unknown" when missing).
	ByClass map[string]int `json:"by_class"`
	// ByStage counts dead letters by sluice-stage ("unknown" when missing).
	ByStage map[string]int `json:"by_stage"`
	// ByReason counts dead letters by Reason of their sluice-error.
	ByReason map[string]int `json:"by_reason"`
	// Oldest is the earliest sluice-first-failure-ts, zero if no record has one.
	Oldest time.Time `json:"oldest_first_failure,omitzero"`
	// OldestAge is how long before now Oldest was, zero if Oldest is.
	OldestAge time.Duration `json:"oldest_age_ns"`
	// Samples are the first dead letters, at most the number asked for.
	Samples []*kgo.Record `json:"-"`
}

// Summarize counts dead letters recs by class, stage and reason, finds the oldest first
// failure (its age measured at now) and keeps the first samples records as samples. It
// does not modify recs.
func Summarize(recs []*kgo.Record, now time.Time, samples int) Summary {
	s := Summary{ByClass: map[string]int{}, ByStage: map[string]int{}, ByReason: map[string]int{}}
	for _, r := range recs {
		s.Total++
		s.ByClass[orUnknown(wire.Header(r, wire.HeaderClass))]++
		s.ByStage[orUnknown(wire.Header(r, wire.HeaderStage))]++
		s.ByReason[Reason(wire.Header(r, wire.HeaderError))]++
		if at, ok := wire.FirstFailure(r); ok && (s.Oldest.IsZero() || at.Before(s.Oldest)) {
			s.Oldest = at
		}
		if len(s.Samples) < samples {
			s.Samples = append(s.Samples, r)
		}
	}
	if !s.Oldest.IsZero() {
		s.OldestAge = now.Sub(s.Oldest)
	}
	return s
}

// Reason is the grouping key of an error message: msg up to its first ':' (the message's
// context, e.g. the field of a rule), at most 80 bytes cut on a rune boundary, trimmed;
// "unknown" if that leaves nothing.
func Reason(msg string) string {
	if i := strings.IndexByte(msg, ':'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > maxReasonLen {
		cut := maxReasonLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	return orUnknown(strings.TrimSpace(msg))
}

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}
