package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

var replayAt = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// original is a raw record as the clean stage reads it.
func original() *kgo.Record {
	return &kgo.Record{
		Topic: "purchases", Partition: 3, Offset: 77,
		Key: []byte("u-7"), Value: []byte("\x00\x00\x00\x00\x01body"),
		Timestamp: replayAt.Add(-time.Hour),
		Headers: []kgo.RecordHeader{
			{Key: wire.HeaderEventID, Value: []byte("01JX")},
			{Key: "trace", Value: []byte("t-1")},
		},
	}
}

// letter is a dead letter of original with the given class, stage and first failure.
func letter(class dlq.Class, stage string, at time.Time, attempts int) *kgo.Record {
	dl := dlq.Record(original(), "purchases.dlq", dlq.Letter{
		Stage: stage, Class: class, Err: errors.New("amount: must be >= 0"), Attempts: attempts, FirstFailure: at,
	})
	dl.Offset = 5
	return dl
}

// headerMap maps r's headers, failing on a repeated key.
func headerMap(t *testing.T, r *kgo.Record) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, h := range r.Headers {
		if _, dup := m[h.Key]; dup {
			t.Errorf("header %s appears twice: %v", h.Key, r.Headers)
		}
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestFilterMatch(t *testing.T) {
	rec := letter(dlq.Permanent, "clean", replayAt, 1)
	noTS := letter(dlq.Permanent, "clean", replayAt, 1)
	noTS.Headers = noTS.Headers[:len(noTS.Headers)-1] // drop sluice-first-failure-ts
	cases := []struct {
		name string
		f    dlq.Filter
		rec  *kgo.Record
		want bool
	}{
		{"zero filter", dlq.Filter{}, rec, true},
		{"class matches", dlq.Filter{Classes: []string{"transient", "permanent"}}, rec, true},
		{"class differs", dlq.Filter{Classes: []string{"transient"}}, rec, false},
		{"stage matches", dlq.Filter{Stages: []string{"clean"}}, rec, true},
		{"stage differs", dlq.Filter{Stages: []string{"sink"}}, rec, false},
		{"class and stage", dlq.Filter{Classes: []string{"permanent"}, Stages: []string{"sink"}}, rec, false},
		{"since equal", dlq.Filter{Since: replayAt}, rec, true},
		{"since after", dlq.Filter{Since: replayAt.Add(time.Microsecond)}, rec, false},
		{"until equal is excluded", dlq.Filter{Until: replayAt}, rec, false},
		{"until after", dlq.Filter{Until: replayAt.Add(time.Second)}, rec, true},
		{"inside range", dlq.Filter{Since: replayAt.Add(-time.Hour), Until: replayAt.Add(time.Hour)}, rec, true},
		{"max is ignored", dlq.Filter{Max: 1}, rec, true},
		{"no timestamp, no bound", dlq.Filter{}, noTS, true},
		{"no timestamp, a bound", dlq.Filter{Since: replayAt.Add(-time.Hour)}, noTS, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.f.Match(c.rec); got != c.want {
				t.Errorf("Match = %v, want %v", got, c.want)
			}
		})
	}
}

func TestReplayRecord(t *testing.T) {
	cases := []struct {
		name      string
		dead      *kgo.Record
		to        string
		wantTopic string
		wantAtt   string
	}{
		{"to original topic", letter(dlq.Permanent, "clean", replayAt, 1), "", "purchases", "1"},
		{"to another topic", letter(dlq.Transient, "sink", replayAt, 4), "purchases.retry", "purchases.retry", "4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := dlq.ReplayRecord(c.dead, c.to)
			if r.Topic != c.wantTopic {
				t.Errorf("topic = %q, want %q", r.Topic, c.wantTopic)
			}
			if r.Partition != -1 {
				t.Errorf("partition = %d, want -1 (the partitioner decides)", r.Partition)
			}
			o := original()
			if string(r.Key) != string(o.Key) || string(r.Value) != string(o.Value) || !r.Timestamp.Equal(o.Timestamp) {
				t.Errorf("key/value/timestamp = %q/%q/%v, want the original", r.Key, r.Value, r.Timestamp)
			}
			h := headerMap(t, r)
			want := map[string]string{
				wire.HeaderEventID: "01JX", "trace": "t-1",
				wire.HeaderAttempts: c.wantAtt, wire.HeaderReplayed: "true",
			}
			if len(h) != len(want) {
				t.Errorf("headers = %v, want %v", h, want)
			}
			for k, v := range want {
				if h[k] != v {
					t.Errorf("header %s = %q, want %q", k, h[k], v)
				}
			}
		})
	}
}

func TestReplayRecordDropsStaleHeaders(t *testing.T) {
	dead := letter(dlq.Permanent, "clean", replayAt, 2)
	dead.Headers = append(dead.Headers,
		kgo.RecordHeader{Key: "sluice-error-detail", Value: []byte("x")},
		kgo.RecordHeader{Key: "sluice-original-key", Value: []byte("y")},
		kgo.RecordHeader{Key: wire.HeaderReplayed, Value: []byte("true")},
		kgo.RecordHeader{Key: wire.HeaderAttempts, Value: []byte("3")},
	)
	h := headerMap(t, dlq.ReplayRecord(dead, ""))
	for k := range h {
		if strings.HasPrefix(k, wire.HeaderError) || strings.HasPrefix(k, "sluice-original-") ||
			k == wire.HeaderStage || k == wire.HeaderFirstFailureTS {
			t.Errorf("letter header %s kept", k)
		}
	}
	if h[wire.HeaderAttempts] != "3" {
		t.Errorf("attempts = %q, want the last one, 3", h[wire.HeaderAttempts])
	}
}

// A record that fails on every replay keeps one set of headers: replay, dead-letter
// again, replay, ... five times over.
func TestReplayCyclesBounded(t *testing.T) {
	rec := original()
	var sizes []int
	for i := range 5 {
		dead := dlq.Record(rec, "purchases.dlq", dlq.Letter{
			Stage: "clean", Class: dlq.Permanent, Err: fmt.Errorf("amount: cycle %d", i),
			Attempts: wire.Attempts(rec) + 1, FirstFailure: replayAt.Add(time.Duration(i) * time.Minute),
		})
		if got := wire.Attempts(dead); got != i+1 {
			t.Fatalf("cycle %d: attempts %d, want %d", i, got, i+1)
		}
		rec = dlq.ReplayRecord(dead, "")
		rec.Partition, rec.Offset = 3, int64(100+i) // as read back from the topic
		headerMap(t, dead)
		headerMap(t, rec)
		sizes = append(sizes, len(dead.Headers), len(rec.Headers))
	}
	// From the second cycle on, the dead letter also carries sluice-replayed.
	for i := 4; i < len(sizes); i++ {
		if sizes[i] != sizes[2+i%2] {
			t.Fatalf("header counts grow over cycles: %v", sizes)
		}
	}
	if h := headerMap(t, rec); h[wire.HeaderAttempts] != "5" || h["trace"] != "t-1" {
		t.Errorf("after 5 cycles: headers %v", h)
	}
}

func TestAttempts(t *testing.T) {
	for _, c := range []struct {
		name string
		hs   []kgo.RecordHeader
		want int
	}{
		{"none", nil, 0},
		{"number", []kgo.RecordHeader{{Key: wire.HeaderAttempts, Value: []byte("7")}}, 7},
		{"garbage", []kgo.RecordHeader{{Key: wire.HeaderAttempts, Value: []byte("x")}}, 0},
		{"negative", []kgo.RecordHeader{{Key: wire.HeaderAttempts, Value: []byte("-3")}}, 0},
		{"last wins", []kgo.RecordHeader{{Key: wire.HeaderAttempts, Value: []byte("1")}, {Key: wire.HeaderAttempts, Value: []byte("2")}}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := wire.Attempts(&kgo.Record{Headers: c.hs}); got != c.want {
				t.Errorf("Attempts = %d, want %d", got, c.want)
			}
		})
	}
}

// fakeProducer records what it is given, or fails.
type fakeProducer struct {
	got []*kgo.Record
	err error
}

func (p *fakeProducer) Produce(_ context.Context, recs ...*kgo.Record) error {
	if p.err != nil {
		return p.err
	}
	p.got = append(p.got, recs...)
	return nil
}

var _ dlq.Producer = (*fakeProducer)(nil)

func TestReplay(t *testing.T) {
	dead := []*kgo.Record{
		letter(dlq.Permanent, "clean", replayAt, 1),
		letter(dlq.Transient, "clean", replayAt.Add(time.Minute), 3),
		letter(dlq.Permanent, "sink", replayAt.Add(2*time.Minute), 1),
		letter(dlq.Permanent, "clean", replayAt.Add(3*time.Minute), 1),
	}
	noOrigin := letter(dlq.Permanent, "clean", replayAt, 1)
	noOrigin.Headers = []kgo.RecordHeader{{Key: wire.HeaderClass, Value: []byte("permanent")}}
	boom := errors.New("broker down")
	cases := []struct {
		name    string
		dead    []*kgo.Record
		to      string
		f       dlq.Filter
		perr    error
		want    int
		wantErr error
	}{
		{"all", dead, "", dlq.Filter{}, nil, 4, nil},
		{"by class", dead, "", dlq.Filter{Classes: []string{"permanent"}}, nil, 3, nil},
		{"by class with max", dead, "", dlq.Filter{Classes: []string{"permanent"}, Max: 2}, nil, 2, nil},
		{"by stage and time", dead, "x", dlq.Filter{Stages: []string{"clean"}, Since: replayAt.Add(time.Minute)}, nil, 2, nil},
		{"none match", dead, "", dlq.Filter{Stages: []string{"window"}}, nil, 0, nil},
		{"empty", nil, "", dlq.Filter{}, nil, 0, nil},
		{"produce fails", dead, "", dlq.Filter{}, boom, 0, boom},
		{"no origin, no to", []*kgo.Record{noOrigin}, "", dlq.Filter{}, nil, 0, errors.New("no --to")},
		{"no origin, to", []*kgo.Record{noOrigin}, "purchases", dlq.Filter{}, nil, 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &fakeProducer{err: c.perr}
			n, err := dlq.Replay(t.Context(), p, c.dead, c.to, c.f)
			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("Replay: %v", err)
			case c.wantErr != nil && err == nil:
				t.Fatalf("Replay = %d, nil; want an error", n)
			case c.wantErr != nil && !errors.Is(err, c.wantErr) && !strings.Contains(err.Error(), c.wantErr.Error()):
				t.Fatalf("Replay error %v, want %v", err, c.wantErr)
			}
			if n != c.want || len(p.got) != c.want {
				t.Errorf("Replay = %d (produced %d), want %d", n, len(p.got), c.want)
			}
			for _, r := range p.got {
				want := c.to
				if want == "" {
					want = "purchases"
				}
				if r.Topic != want || headerMap(t, r)[wire.HeaderReplayed] != "true" {
					t.Errorf("replayed %s with %v", r.Topic, r.Headers)
				}
			}
		})
	}
}

func TestFirstFailure(t *testing.T) {
	at, ok := wire.FirstFailure(letter(dlq.Permanent, "clean", replayAt.Add(123*time.Microsecond), 1))
	if !ok || !at.Equal(replayAt.Add(123*time.Microsecond)) {
		t.Errorf("FirstFailure = %v, %v", at, ok)
	}
	bad := &kgo.Record{Headers: []kgo.RecordHeader{{Key: wire.HeaderFirstFailureTS, Value: []byte(strconv.Quote("x"))}}}
	if _, ok := wire.FirstFailure(bad); ok {
		t.Errorf("FirstFailure of garbage ok")
	}
}

// FuzzReplayRecord feeds arbitrary headers (a dead-letter topic is anyone's input) to
// ReplayRecord, Filter.Match, Summarize and Reason: none panics, a replay carries no
// letter header, one sluice-replayed and at most one sluice-attempts, and a reason stays
// short.
func FuzzReplayRecord(f *testing.F) {
	f.Add(wire.HeaderError, "amount: bad", wire.HeaderFirstFailureTS, "12", wire.HeaderAttempts, "3")
	f.Add(wire.HeaderOriginalTopic, "", wire.HeaderReplayed, "false", wire.HeaderAttempts, "x")
	f.Add("trace", "é:", wire.HeaderFirstFailureTS, "-9223372036854775808", wire.HeaderStage, "clean")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		dead := &kgo.Record{Topic: "t.dlq", Key: []byte("k"), Value: []byte("v"), Headers: []kgo.RecordHeader{
			{Key: k1, Value: []byte(v1)}, {Key: k2, Value: []byte(v2)}, {Key: k3, Value: []byte(v3)},
			{Key: wire.HeaderAttempts, Value: []byte(v3)},
		}}
		r := dlq.ReplayRecord(dead, "")
		replayed, attempts := 0, 0
		for _, h := range r.Headers {
			switch {
			case h.Key == wire.HeaderReplayed:
				replayed++
			case h.Key == wire.HeaderAttempts:
				attempts++
			case strings.HasPrefix(h.Key, wire.HeaderError), strings.HasPrefix(h.Key, "sluice-original-"),
				h.Key == wire.HeaderStage, h.Key == wire.HeaderFirstFailureTS:
				t.Errorf("letter header %s kept: %v", h.Key, r.Headers)
			}
		}
		if replayed != 1 || attempts != 1 {
			t.Errorf("%d sluice-replayed, %d sluice-attempts: %v", replayed, attempts, r.Headers)
		}
		dlq.Filter{Since: replayAt, Classes: []string{v1}}.Match(dead)
		s := dlq.Summarize([]*kgo.Record{dead, r}, replayAt, 1)
		if s.Total != 2 || len(s.Samples) != 1 {
			t.Errorf("summary %+v", s)
		}
		if reason := dlq.Reason(v1); len(reason) > 80 || reason == "" || strings.Contains(reason, ":") {
			t.Errorf("Reason(%q) = %q", v1, reason)
		}
	})
}
