package dlq_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
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
	return strings.HasPrefix(k, wire.HeaderError) || strings.HasPrefix(k, "sluice-retry-")
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
		if h.Key == wire.HeaderError {
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

// FuzzRetryRoundTrip sends records with arbitrary headers through a retry topic and back
// (RetryRecord, then Redelivery, as the clean and retry stages do) several times, and
// checks that the record returns to its origin with its own headers in order, that the
// sluice-* headers never repeat and that the header count stops growing after one trip.
// It also feeds the headers straight to Redelivery and RetryAt, which must not panic.
func FuzzRetryRoundTrip(f *testing.F) {
	f.Add("trace=abc\nsluice-event-id=01JD", int32(2), int64(41), int64(5))
	f.Add("sluice-retry-at=x\nsluice-original-partition=-1\nsluice-original-topic=", int32(0), int64(0), int64(0))
	f.Add("sluice-attempts=99999999999999999999\nsluice-retry-attempts=-3", int32(7), int64(-1), int64(-9))
	f.Fuzz(func(t *testing.T, hdrs string, partition int32, offset, delayMs int64) {
		if partition < 0 {
			partition = -partition
		}
		if partition < 0 {
			partition = 0
		}
		rec := &kgo.Record{Topic: "purchases", Partition: partition, Offset: offset, Key: []byte("k"), Value: []byte("v")}
		for _, line := range strings.Split(hdrs, "\n") {
			k, v, _ := strings.Cut(line, "=")
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		_, _ = dlq.Redelivery(rec)
		_, _ = wire.RetryAt(rec)
		var own []kgo.RecordHeader
		for _, h := range rec.Headers {
			if !isLetter(h.Key) {
				own = append(own, h)
			}
		}
		tier := dlq.Tier{Delay: time.Minute, Topic: "_sluice.retry.1m", Partitions: 3}
		now := time.UnixMicro(1_700_000_000_000_000)
		cur, sizes := rec, []int{}
		for round := 1; round <= 4; round++ {
			l := dlq.Letter{Stage: "clean", Class: dlq.Transient, Err: errors.New("timeout"), Attempts: round, FirstFailure: now}
			at := now.Add(time.Duration(delayMs) * time.Millisecond)
			waiting := dlq.RetryRecord(cur, tier, l, round, at)
			if waiting.Partition != partition%3 {
				t.Fatalf("retry record on partition %d, want %d", waiting.Partition, partition%3)
			}
			if got, ok := wire.RetryAt(waiting); !ok || !got.Equal(time.UnixMicro(at.UnixMicro())) {
				t.Fatalf("RetryAt = %v, %v; want %v", got, ok, at)
			}
			back, ok := dlq.Redelivery(waiting)
			if !ok || back.Topic != "purchases" || back.Partition != partition {
				t.Fatalf("round %d: redelivered to %v/%v (ok %v)", round, back.Topic, back.Partition, ok)
			}
			seen := map[string]bool{}
			var mine []kgo.RecordHeader
			for _, h := range back.Headers {
				if strings.HasPrefix(h.Key, "sluice-") && isLetter(h.Key) {
					if seen[h.Key] {
						t.Fatalf("round %d: header %s repeats: %q", round, h.Key, back.Headers)
					}
					seen[h.Key] = true
					continue
				}
				mine = append(mine, h)
			}
			if len(mine) != len(own) {
				t.Fatalf("round %d: own headers %q, want %q", round, mine, own)
			}
			for i := range own {
				if !eqHeader(mine[i], own[i]) {
					t.Fatalf("round %d: own header %d = %q, want %q", round, i, mine[i], own[i])
				}
			}
			sizes = append(sizes, len(back.Headers))
			cur = back
		}
		for _, n := range sizes[1:] {
			if n != sizes[0] {
				t.Fatalf("header counts per trip %v: not bounded", sizes)
			}
		}
	})
}
