package dlq_test

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
)

func deadWith(class dlq.Class, stage, msg string, at time.Time) *kgo.Record {
	return dlq.Record(original(), "purchases.dlq", dlq.Letter{Stage: stage, Class: class, Err: errors.New(msg), FirstFailure: at})
}

func TestSummarize(t *testing.T) {
	now := replayAt.Add(time.Hour)
	a := deadWith(dlq.Permanent, "clean", "amount: must be >= 0 (got -5)", replayAt)
	b := deadWith(dlq.Permanent, "clean", "amount: must be >= 0 (got -1)", replayAt.Add(10*time.Minute))
	c := deadWith(dlq.Transient, "sink", "timeout", replayAt.Add(-30*time.Minute))
	bare := &kgo.Record{Topic: "purchases.dlq", Value: []byte("x")}
	cases := []struct {
		name      string
		recs      []*kgo.Record
		samples   int
		total     int
		byClass   map[string]int
		byStage   map[string]int
		byReason  map[string]int
		oldestAge time.Duration
		nSamples  int
	}{
		{"empty", nil, 3, 0, map[string]int{}, map[string]int{}, map[string]int{}, 0, 0},
		{"one", []*kgo.Record{a}, 3, 1, map[string]int{"permanent": 1}, map[string]int{"clean": 1}, map[string]int{"amount": 1}, time.Hour, 1},
		{"grouped", []*kgo.Record{a, b, c}, 2, 3,
			map[string]int{"permanent": 2, "transient": 1}, map[string]int{"clean": 2, "sink": 1},
			map[string]int{"amount": 2, "timeout": 1}, 90 * time.Minute, 2},
		{"no samples", []*kgo.Record{a, b}, 0, 2, map[string]int{"permanent": 2}, map[string]int{"clean": 2}, map[string]int{"amount": 2}, time.Hour, 0},
		{"no letter headers", []*kgo.Record{bare}, 3, 1, map[string]int{"unknown": 1}, map[string]int{"unknown": 1}, map[string]int{"unknown": 1}, 0, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := dlq.Summarize(tc.recs, now, tc.samples)
			if s.Total != tc.total {
				t.Errorf("total = %d, want %d", s.Total, tc.total)
			}
			for _, m := range []struct {
				name      string
				got, want map[string]int
			}{{"class", s.ByClass, tc.byClass}, {"stage", s.ByStage, tc.byStage}, {"reason", s.ByReason, tc.byReason}} {
				if !maps.Equal(m.got, m.want) {
					t.Errorf("by %s = %v, want %v", m.name, m.got, m.want)
				}
			}
			if s.OldestAge != tc.oldestAge {
				t.Errorf("oldest age = %v, want %v", s.OldestAge, tc.oldestAge)
			}
			if tc.oldestAge == 0 != s.Oldest.IsZero() {
				t.Errorf("oldest = %v with age %v", s.Oldest, s.OldestAge)
			}
			if len(s.Samples) != tc.nSamples {
				t.Errorf("%d samples, want %d", len(s.Samples), tc.nSamples)
			}
			for i, r := range s.Samples {
				if r != tc.recs[i] {
					t.Errorf("sample %d is not record %d", i, i)
				}
			}
		})
	}
}

func TestReason(t *testing.T) {
	long := strings.Repeat("x", 79) + "é" + "yyy"
	for _, c := range []struct{ name, msg, want string }{
		{"empty", "", "unknown"},
		{"no colon", "timeout", "timeout"},
		{"first colon", "decode purchases: schema 7: not found", "decode purchases"},
		{"leading colon", ": x", "unknown"},
		{"trimmed", "  amount : bad", "amount"},
		{"cut at 80 bytes", strings.Repeat("a", 100), strings.Repeat("a", 80)},
		{"cut on a rune boundary", long, strings.Repeat("x", 79)},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := dlq.Reason(c.msg); got != c.want {
				t.Errorf("Reason(%q) = %q, want %q", c.msg, got, c.want)
			}
		})
	}
}
