package dlq_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
)

// FuzzRecord dead-letters records with arbitrary headers (any producer can write them)
// and error messages, twice, and checks the letter invariants: exactly one of each
// letter header, no other sluice-error* header, other headers kept in order, the error
// bounded, and a second dead-lettering adding nothing.
func FuzzRecord(f *testing.F) {
	f.Add("trace=abc\nsluice-event-id=01JD", "amount: must be >= 0", int32(2), int64(41))
	f.Add("sluice-error=old\nsluice-error-class=transient\nsluice-error-x=1\nsluice-attempts=9", "x", int32(0), int64(0))
	f.Add("=\n=\nsluice-stage", strings.Repeat("é", 600), int32(-1), int64(-1))
	f.Fuzz(func(t *testing.T, hdrs, msg string, partition int32, offset int64) {
		rec := &kgo.Record{Topic: "purchases", Partition: partition, Offset: offset, Key: []byte("k"), Value: []byte("v")}
		for _, line := range strings.Split(hdrs, "\n") {
			k, v, _ := strings.Cut(line, "=")
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		var kept []kgo.RecordHeader
		for _, h := range rec.Headers {
			if !isLetter(h.Key) {
				kept = append(kept, h)
			}
		}
		l := dlq.Letter{Stage: "clean", Class: dlq.Permanent, Err: errors.New(msg), Attempts: 1}
		once := dlq.Record(rec, "purchases.dlq", l)
		check(t, once, kept, msg)
		twice := dlq.Record(once, "purchases.dlq", l)
		check(t, twice, kept, msg)
		if len(twice.Headers) != len(once.Headers) {
			t.Fatalf("second dead-lettering: %d headers, want %d", len(twice.Headers), len(once.Headers))
		}
	})
}

func isLetter(k string) bool {
	for _, l := range letterHeaders {
		if k == l {
			return true
		}
	}
	return strings.HasPrefix(k, "sluice-error")
}

func check(t *testing.T, dl *kgo.Record, kept []kgo.RecordHeader, msg string) {
	t.Helper()
	if len(dl.Headers) != len(kept)+len(letterHeaders) {
		t.Fatalf("%d headers, want %d kept + %d letter headers: %q", len(dl.Headers), len(kept), len(letterHeaders), dl.Headers)
	}
	for i, h := range kept {
		if !eqHeader(dl.Headers[i], h) {
			t.Fatalf("header %d = %q, want %q kept in order", i, dl.Headers[i], h)
		}
	}
	seen := map[string]int{}
	for _, h := range dl.Headers[len(kept):] {
		seen[h.Key]++
		if h.Key == dlq.HeaderError {
			if len(h.Value) > 1024 || !strings.HasPrefix(msg, string(h.Value)) {
				t.Fatalf("sluice-error is %d bytes, not a prefix of the message within 1024 bytes", len(h.Value))
			}
		}
	}
	for _, k := range letterHeaders {
		if seen[k] != 1 {
			t.Fatalf("letter header %s appears %d times", k, seen[k])
		}
	}
}
