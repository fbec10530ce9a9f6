package wire

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The names are the contract other programs read on the brokers: they are spelled out
// here so a change to one of them fails a test instead of passing silently.
func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{CleanTopic("purchases"), "purchases.clean"},
		{DLQTopic("purchases"), "purchases.dlq"},
		{LateTopic("purchases"), "purchases.late"},
		{ChangelogTopic(StageClean, "purchases", "dedup"), "_sluice.clean.purchases.dedup-changelog"},
		{Subject("purchases"), "purchases-value"},
		{AggTopic("revenue"), "agg.revenue"},
		{RepartitionTopic("revenue"), "_sluice.revenue.repartition"},
		{AggChangelogTopic("revenue", "windows"), "_sluice.agg.revenue.windows-changelog"},
		{RetryTopic(5 * time.Second), "_sluice.retry.5s"},
		{RetryTopic(10 * time.Minute), "_sluice.retry.10m"},
		{RetryTopic(2 * time.Hour), "_sluice.retry.2h"},
		{RetryTopic(250 * time.Millisecond), "_sluice.retry.250ms"},
		{RetryTopic(90 * time.Second), "_sluice.retry.90s"},
		{RetryDLQTopic, "_sluice.retry.dlq"},
		{SinkDLQTopic, "_sluice.sink.dlq"},
		{GroupID(StageClean), "sluice.clean"},
		{GroupID(StageRetry), "sluice.retry"},
		{GroupID(StageSink), "sluice.sink"},
		{GroupID(StageRepartition("revenue")), "sluice.repartition.revenue"},
		{GroupID(StageAggregate("revenue")), "sluice.agg.revenue"},
		{TransactionalID("ingest", "i-1"), "sluice.ingest.i-1"},
		{ClientID("console"), "sluice-console"},
		{HeaderEventID, "sluice-event-id"},
		{HeaderIngestTS, "sluice-ingest-ts"},
		{HeaderRequestID, "sluice-request-id"},
		{HeaderAttempts, "sluice-attempts"},
		{HeaderClass, "sluice-error-class"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestTopicKinds(t *testing.T) {
	if raw, ok := RawOfClean("a.b.clean"); !ok || raw != "a.b" {
		t.Errorf("RawOfClean(a.b.clean) = %q, %v", raw, ok)
	}
	if _, ok := RawOfClean("agg.x"); ok {
		t.Error("RawOfClean(agg.x) is not a clean topic")
	}
	for topic, want := range map[string]bool{
		AggTopic("x"): true, RepartitionTopic("x"): true, AggChangelogTopic("x", "marks"): true,
		CleanTopic("x"): false, RetryTopic(time.Second): false, ChangelogTopic(StageClean, "x", "dedup"): false,
	} {
		if got := IsAggregationTopic(topic); got != want {
			t.Errorf("IsAggregationTopic(%s) = %v, want %v", topic, got, want)
		}
	}
	if s, ok := StageOfGroup(GroupID(StageAggregate("x"))); !ok || s != "agg.x" {
		t.Errorf("StageOfGroup = %q, %v", s, ok)
	}
	if _, ok := StageOfGroup("connect-x"); ok {
		t.Error("StageOfGroup(connect-x) is not a Sluice group")
	}
}

func rec(kv ...string) *kgo.Record {
	r := &kgo.Record{}
	for i := 0; i < len(kv); i += 2 {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: kv[i], Value: []byte(kv[i+1])})
	}
	return r
}

func TestHeaderGetters(t *testing.T) {
	r := rec(HeaderEventID, "first", HeaderEventID, "last")
	if got := Header(r, HeaderEventID); got != "last" {
		t.Errorf("Header of a repeated header = %q, want the last", got)
	}
	if _, ok := Lookup(r, HeaderIngestTS); ok {
		t.Error("Lookup of an absent header: ok")
	}
	for _, c := range []struct {
		r    *kgo.Record
		want int
	}{
		{nil, 0},
		{rec(), 0},
		{rec(HeaderAttempts, "3"), 3},
		{rec(HeaderAttempts, "3", HeaderAttempts, "x"), 0}, // the last counts, and it does not parse
		{rec(HeaderAttempts, "x", HeaderAttempts, "4"), 4},
		{rec(HeaderAttempts, "-1"), 0},
		{rec(HeaderAttempts, " 2"), 0},
		{rec(HeaderAttempts, "99999999999999999999"), 0},
	} {
		if got := Attempts(c.r); got != c.want {
			t.Errorf("Attempts(%v) = %d, want %d", c.r, got, c.want)
		}
	}
	if got := RetryAttempts(rec(HeaderRetryAttempts, "2", HeaderAttempts, "5")); got != 2 {
		t.Errorf("RetryAttempts = %d, want 2", got)
	}
	at := time.Date(2026, 12, 6, 1, 2, 3, 4000, time.UTC)
	r = rec(HeaderIngestTS, string(AppendMicros(nil, at)), HeaderRetryAt, "bad", HeaderFirstFailureTS, "0")
	if got, ok := IngestTS(r); !ok || !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("IngestTS = %v, %v, want %v in UTC", got, ok, at)
	}
	if _, ok := RetryAt(r); ok {
		t.Error("RetryAt of a bad value: ok")
	}
	if got, ok := FirstFailure(r); !ok || got.UnixMicro() != 0 {
		t.Errorf("FirstFailure of 0 = %v, %v: want the epoch", got, ok)
	}
}

func TestHeaderClasses(t *testing.T) {
	for k, want := range map[string][2]bool{
		HeaderError: {true, false}, HeaderClass: {true, false}, "sluice-error-detail": {true, false},
		HeaderRetryAt: {true, false}, HeaderRetryAttempts: {true, false},
		HeaderOriginalTopic: {false, true}, HeaderOriginalOffset: {false, true},
		HeaderAttempts: {false, false}, HeaderEventID: {false, false}, "error": {false, false},
	} {
		if got := [2]bool{IsFailureHeader(k), IsOriginHeader(k)}; got != want {
			t.Errorf("%s: failure, origin = %v, want %v", k, got, want)
		}
	}
}

func FuzzHeaderGetters(f *testing.F) {
	for _, s := range []string{"", "0", "-1", "123", "9223372036854775807", "9223372036854775808", "1e3", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := rec(HeaderAttempts, v, HeaderIngestTS, v)
		if n := Attempts(r); n < 0 {
			t.Fatalf("Attempts(%q) = %d", v, n)
		}
		IngestTS(r)
	})
}
