package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// letterHeaders are the headers every dead letter carries (docs/DESIGN.md#headers).
var letterHeaders = []string{
	wire.HeaderClass, wire.HeaderError, wire.HeaderStage, wire.HeaderOriginalTopic,
	wire.HeaderOriginalPartition, wire.HeaderOriginalOffset, wire.HeaderAttempts, wire.HeaderFirstFailureTS,
}

var (
	failedAt = time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC)
	recTS    = time.Date(2026, 11, 27, 9, 59, 59, 0, time.UTC)
)

// source is a raw record as the clean stage reads it.
func source() *kgo.Record {
	return &kgo.Record{
		Topic:     "purchases",
		Partition: 2,
		Offset:    41,
		Key:       []byte("u-42"),
		Value:     []byte("\x00\x00\x00\x00\x01body"),
		Timestamp: recTS,
		Headers: []kgo.RecordHeader{
			{Key: wire.HeaderEventID, Value: []byte("01JD")},
			{Key: wire.HeaderIngestTS, Value: []byte("1796292000000000")},
			{Key: "trace", Value: []byte("abc")},
		},
	}
}

// headers maps a record's headers, failing on a repeated key.
func headers(t *testing.T, r *kgo.Record) map[string]string {
	t.Helper()
	m := make(map[string]string, len(r.Headers))
	for _, h := range r.Headers {
		if _, dup := m[h.Key]; dup {
			t.Errorf("header %s appears twice: %v", h.Key, r.Headers)
		}
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestRecordKeepsOriginalAndAddsLetter(t *testing.T) {
	rec := source()
	orig := slices.Clone(rec.Headers)
	dl := dlq.Record(rec, "purchases.dlq", dlq.Letter{
		Stage: "clean", Class: dlq.Permanent, Err: errors.New("amount: must be >= 0"),
		Attempts: 3, FirstFailure: failedAt,
	})

	if dl.Topic != "purchases.dlq" {
		t.Errorf("topic = %q, want purchases.dlq", dl.Topic)
	}
	if dl.Partition != rec.Partition {
		t.Errorf("partition = %d, want %d", dl.Partition, rec.Partition)
	}
	if string(dl.Key) != "u-42" || string(dl.Value) != string(rec.Value) {
		t.Errorf("key/value = %q/%q, want the original", dl.Key, dl.Value)
	}
	if !dl.Timestamp.Equal(recTS) {
		t.Errorf("timestamp = %v, want %v", dl.Timestamp, recTS)
	}
	if !slices.EqualFunc(dl.Headers[:len(orig)], orig, eqHeader) {
		t.Errorf("original headers not kept first and in order: %v", dl.Headers)
	}
	if !slices.EqualFunc(rec.Headers, orig, eqHeader) {
		t.Errorf("source record's headers changed: %v", rec.Headers)
	}
	if len(dl.Headers) != len(orig)+len(letterHeaders) {
		t.Errorf("%d headers, want %d: %v", len(dl.Headers), len(orig)+len(letterHeaders), dl.Headers)
	}
	h := headers(t, dl)
	want := map[string]string{
		wire.HeaderClass:             "permanent",
		wire.HeaderError:             "amount: must be >= 0",
		wire.HeaderStage:             "clean",
		wire.HeaderOriginalTopic:     "purchases",
		wire.HeaderOriginalPartition: "2",
		wire.HeaderOriginalOffset:    "41",
		wire.HeaderAttempts:          "3",
		wire.HeaderFirstFailureTS:    strconv.FormatInt(failedAt.UnixMicro(), 10),
		wire.HeaderEventID:           "01JD",
		"trace":                      "abc",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
}

func eqHeader(a, b kgo.RecordHeader) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value)
}

func TestRecordAttemptsAtLeastOne(t *testing.T) {
	for _, c := range []struct {
		name     string
		attempts int
		want     string
	}{{"zero", 0, "1"}, {"negative", -2, "1"}, {"one", 1, "1"}, {"five", 5, "5"}} {
		t.Run(c.name, func(t *testing.T) {
			dl := dlq.Record(source(), "purchases.dlq", dlq.Letter{Stage: "clean", Class: dlq.Permanent, Err: errors.New("x"), Attempts: c.attempts})
			if got := headers(t, dl)[wire.HeaderAttempts]; got != c.want {
				t.Errorf("attempts header = %q, want %q", got, c.want)
			}
		})
	}
}

// A dead letter replayed to its topic and dead-lettered again carries one set of letter
// headers, the newest: its size stays bounded however often that happens.
func TestRecordTwiceReplacesHeaders(t *testing.T) {
	first := dlq.Record(source(), "purchases.dlq", dlq.Letter{
		Stage: "clean", Class: dlq.Transient, Err: errors.New("registry timeout"), Attempts: 4, FirstFailure: failedAt,
	})
	// Replayed: back on its original topic, at a new offset.
	first.Topic, first.Partition, first.Offset = "purchases", 1, 900
	first.Headers = append(first.Headers, kgo.RecordHeader{Key: "sluice-error-detail", Value: []byte("stale")})

	later := failedAt.Add(time.Hour)
	n := len(first.Headers) - 1 // without the extra sluice-error-detail
	rec := first
	for i := range 3 {
		rec = dlq.Record(rec, "purchases.dlq", dlq.Letter{
			Stage: "sink", Class: dlq.Permanent, Err: fmt.Errorf("rejected %d", i), Attempts: 1, FirstFailure: later,
		})
		if len(rec.Headers) != n {
			t.Fatalf("round %d: %d headers, want %d: %v", i, len(rec.Headers), n, rec.Headers)
		}
		h := headers(t, rec)
		want := map[string]string{
			wire.HeaderClass:             "permanent",
			wire.HeaderError:             fmt.Sprintf("rejected %d", i),
			wire.HeaderStage:             "sink",
			wire.HeaderAttempts:          "1",
			wire.HeaderFirstFailureTS:    strconv.FormatInt(later.UnixMicro(), 10),
			"trace":                      "abc",
			wire.HeaderOriginalPartition: "1",
		}
		if v, ok := h["sluice-error-detail"]; ok {
			t.Errorf("round %d: stale sluice-error-detail = %q kept", i, v)
		}
		if i == 0 {
			want[wire.HeaderOriginalTopic] = "purchases"
			want[wire.HeaderOriginalOffset] = "900"
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("round %d: header %s = %q, want %q", i, k, h[k], v)
			}
		}
	}
}

func TestRecordTruncatesError(t *testing.T) {
	cases := []struct {
		name string
		msg  string
		want int
	}{
		{"short", "bad", 3},
		{"exactly the limit", strings.Repeat("a", 1024), 1024},
		{"one over", strings.Repeat("b", 1025), 1024},
		{"huge", strings.Repeat("c", 1<<20), 1024},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dl := dlq.Record(source(), "purchases.dlq", dlq.Letter{Stage: "clean", Class: dlq.Permanent, Err: errors.New(c.msg)})
			got := headers(t, dl)[wire.HeaderError]
			if len(got) != c.want {
				t.Errorf("sluice-error is %d bytes, want %d", len(got), c.want)
			}
			if !strings.HasPrefix(c.msg, got) {
				t.Errorf("sluice-error is not a prefix of the message")
			}
		})
	}
}

func TestDeadLetter(t *testing.T) {
	output := &kgo.Record{Topic: "purchases.clean", Value: []byte("out")}
	cases := []struct {
		name    string
		err     error // what the decorated handler returns
		wantErr error // errors.Is target; nil: want no error
		// wantTopics are the topics emitted, in order.
		wantTopics []string
		wantLetter bool
	}{
		{"nil passes through", nil, nil, []string{"purchases.clean"}, false},
		{"permanent is dead-lettered", dlq.AsPermanent(errors.New("bad amount")), nil, []string{"purchases.dlq"}, true},
		{"wrapped permanent is dead-lettered", fmt.Errorf("rules: %w", dlq.AsPermanent(errors.New("bad amount"))), nil, []string{"purchases.dlq"}, true},
		{"transient is returned", dlq.AsTransient(errors.New("registry down")), dlq.ErrTransient, nil, false},
		{"unclassified is returned", errOther, errOther, nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var (
				emitted []*kgo.Record
				letters []dlq.Class
				calls   int
			)
			next := func(_ context.Context, _ *kgo.Record, emit func(*kgo.Record)) error {
				calls++
				if c.err == nil {
					emit(output)
				}
				return c.err
			}
			h := dlq.DeadLetter(dlq.DeadLetterOptions{Stage: "clean", DLQ: func(t string) string { return t + ".dlq" },
				Now:      func() time.Time { return failedAt },
				OnLetter: func(_ *kgo.Record, cl dlq.Class, _ error) { letters = append(letters, cl) }})(next)
			rec := source()
			err := h(t.Context(), rec, func(r *kgo.Record) { emitted = append(emitted, r) })

			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case c.wantErr != nil && !errors.Is(err, c.wantErr):
				t.Fatalf("err = %v, want one wrapping %v", err, c.wantErr)
			}
			if calls != 1 {
				t.Errorf("handler called %d times, want 1", calls)
			}
			var topics []string
			for _, r := range emitted {
				topics = append(topics, r.Topic)
			}
			if !slices.Equal(topics, c.wantTopics) {
				t.Fatalf("emitted to %v, want %v", topics, c.wantTopics)
			}
			if !c.wantLetter {
				if len(letters) != 0 {
					t.Errorf("onLetter called %d times, want 0", len(letters))
				}
				return
			}
			if len(letters) != 1 || letters[0] != dlq.Permanent {
				t.Errorf("onLetter saw %v, want [permanent]", letters)
			}
			dl := emitted[0]
			h2 := headers(t, dl)
			if h2[wire.HeaderClass] != "permanent" || h2[wire.HeaderStage] != "clean" ||
				!strings.Contains(h2[wire.HeaderError], "bad amount") ||
				h2[wire.HeaderFirstFailureTS] != strconv.FormatInt(failedAt.UnixMicro(), 10) ||
				h2[wire.HeaderOriginalOffset] != "41" || h2[wire.HeaderAttempts] != "1" {
				t.Errorf("dead letter headers = %v", h2)
			}
			if string(dl.Value) != string(rec.Value) || dl.Partition != rec.Partition {
				t.Errorf("dead letter is not the original record: %+v", dl)
			}
		})
	}
}

var errOther = errors.New("something else")

func TestDeadLetterWithoutObserver(t *testing.T) {
	h := dlq.DeadLetter(dlq.DeadLetterOptions{Stage: "clean", DLQ: func(t string) string { return t + ".dlq" }, Now: time.Now})(
		func(context.Context, *kgo.Record, func(*kgo.Record)) error { return dlq.AsPermanent(errors.New("x")) })
	n := 0
	if err := h(t.Context(), source(), func(*kgo.Record) { n++ }); err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if n != 1 {
		t.Fatalf("emitted %d records, want 1 dead letter", n)
	}
}
