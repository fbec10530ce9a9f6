package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// routeNow is the fixed wall clock of the routing tests.
var routeNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// routeTiers are the default delay tiers (5s, 1m, 10m) with three partitions each.
var routeTiers = []dlq.Tier{
	{Delay: 5 * time.Second, Topic: "_sluice.retry.5s", Partitions: 3},
	{Delay: time.Minute, Topic: "_sluice.retry.1m", Partitions: 3},
	{Delay: 10 * time.Minute, Topic: "_sluice.retry.10m", Partitions: 3},
}

// routeBackoff waits 5s, 10s, 20s, ... up to 10m, without jitter.
var routeBackoff = dlq.Backoff{Base: 5 * time.Second, Factor: 2, Cap: 10 * time.Minute}

// routePolicy is the default retry policy of the routing tests.
func routePolicy() dlq.Policy {
	return dlq.Policy{MaxAttempts: 4, Backoff: routeBackoff, Tiers: routeTiers}
}

// userHeaders are the headers a producer put on the source record.
var userHeaders = []kgo.RecordHeader{
	{Key: wire.HeaderEventID, Value: []byte("01JD")},
	{Key: "trace", Value: []byte("abc")},
}

// failedSource is a raw record of partition 5 (retry partition 5 % 3 = 2) with the user
// headers followed by extra.
func failedSource(extra ...kgo.RecordHeader) *kgo.Record {
	return &kgo.Record{
		Topic:     "purchases",
		Partition: 5,
		Offset:    41,
		Key:       []byte("u-42"),
		Value:     []byte("body"),
		Timestamp: recTS,
		Headers:   append(slices.Clone(userHeaders), extra...),
	}
}

// hdr is one record header.
func hdr(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }

// micros is t as the unix-microsecond header value.
func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// failWith returns a handler that always fails with err.
func failWith(err error) dlq.Handler {
	return func(context.Context, *kgo.Record, func(*kgo.Record)) error { return err }
}

// observed collects what a Failures reported through its hooks.
type observed struct {
	letters []dlq.Letter
	retries []dlq.Tier
}

// newRoute returns a Route of stage clean with a fixed policy and clock, and no
// jitter, whose hooks record into obs.
func newRoute(p dlq.Policy, now func() time.Time, obs *observed) dlq.Middleware {
	return dlq.Route(dlq.RouteOptions{
		Stage:    "clean",
		DLQ:      func(topic string) string { return topic + ".dlq" },
		Policy:   func(string) dlq.Policy { return p },
		Now:      now,
		OnLetter: func(_ *kgo.Record, l dlq.Letter) { obs.letters = append(obs.letters, l) },
		OnRetry:  func(_ *kgo.Record, tier dlq.Tier, _ dlq.Letter) { obs.retries = append(obs.retries, tier) },
	})
}

// run calls h once and returns its error and what it emitted.
func run(ctx context.Context, h dlq.Handler, rec *kgo.Record) (error, []*kgo.Record) {
	var out []*kgo.Record
	err := h(ctx, rec, func(r *kgo.Record) { out = append(out, r) })
	return err, out
}

// checkHeaders fails unless r holds every header of want with its value, none of absent,
// no header twice, and the user headers first and in order.
func checkHeaders(t *testing.T, r *kgo.Record, want map[string]string, absent []string) {
	t.Helper()
	h := headers(t, r)
	for k, v := range want {
		if got, ok := h[k]; !ok || got != v {
			t.Errorf("header %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	for _, k := range absent {
		if v, ok := h[k]; ok {
			t.Errorf("header %s = %q present, want absent", k, v)
		}
	}
	if len(r.Headers) < len(userHeaders) || !slices.EqualFunc(r.Headers[:len(userHeaders)], userHeaders, eqHeader) {
		t.Errorf("user headers not kept first and in order: %v", r.Headers)
	}
}

func TestFailuresHandler(t *testing.T) {
	errRegistry := dlq.AsTransient(errors.New("registry timeout"))
	errBad := dlq.AsPermanent(errors.New("amount: must be >= 0"))
	earlier := routeNow.Add(-time.Hour)
	wait := &dlq.WaitError{Until: routeNow.Add(time.Second), Reason: "not-before"}
	retryHeaders := []string{wire.HeaderRetryAt, wire.HeaderRetryAttempts}

	cases := []struct {
		name      string
		policy    dlq.Policy
		rec       *kgo.Record
		err       error
		cancelled bool // ctx is done when the handler runs
		passes    bool // the handler returns err itself and emits nothing
		topic     string
		partition int32
		want      map[string]string
		absent    []string
		letters   int
		retries   int
	}{
		{
			name: "permanent goes to the DLQ at once", policy: routePolicy(), rec: failedSource(), err: errBad,
			topic: "purchases.dlq", partition: 5, letters: 1,
			want: map[string]string{
				wire.HeaderClass: "permanent", wire.HeaderError: "amount: must be >= 0", wire.HeaderStage: "clean",
				wire.HeaderOriginalTopic: "purchases", wire.HeaderOriginalPartition: "5", wire.HeaderOriginalOffset: "41",
				wire.HeaderAttempts: "1", wire.HeaderFirstFailureTS: micros(routeNow),
			},
			absent: retryHeaders,
		},
		{
			name: "permanent carries earlier attempts and first failure", policy: routePolicy(),
			rec:   failedSource(hdr(wire.HeaderAttempts, "2"), hdr(wire.HeaderFirstFailureTS, micros(earlier))),
			err:   &dlq.AttemptsError{Attempts: 1, Err: errBad},
			topic: "purchases.dlq", partition: 5, letters: 1,
			want: map[string]string{
				wire.HeaderClass: "permanent", wire.HeaderAttempts: "3", wire.HeaderFirstFailureTS: micros(earlier),
				wire.HeaderOriginalOffset: "41", wire.HeaderError: "amount: must be >= 0",
			},
			absent: retryHeaders,
		},
		{
			name: "permanent on a retried record drops its retry headers", policy: routePolicy(),
			rec:   failedSource(hdr(wire.HeaderAttempts, "1"), hdr(wire.HeaderRetryAttempts, "1")),
			err:   errBad,
			topic: "purchases.dlq", partition: 5, letters: 1,
			want:   map[string]string{wire.HeaderClass: "permanent", wire.HeaderAttempts: "2"},
			absent: retryHeaders,
		},
		{
			name: "first transient failure waits in the 5s tier", policy: routePolicy(), rec: failedSource(),
			err:   &dlq.AttemptsError{Attempts: 3, Err: errRegistry},
			topic: "_sluice.retry.5s", partition: 2, retries: 1,
			want: map[string]string{
				wire.HeaderClass: "transient", wire.HeaderError: "registry timeout", wire.HeaderStage: "clean",
				wire.HeaderOriginalTopic: "purchases", wire.HeaderOriginalPartition: "5", wire.HeaderOriginalOffset: "41",
				wire.HeaderAttempts: "1", wire.HeaderFirstFailureTS: micros(routeNow),
				wire.HeaderRetryAttempts: "1", wire.HeaderRetryAt: micros(routeNow.Add(5 * time.Second)),
			},
		},
		{
			name: "second failure waits 10s in the 1m tier", policy: routePolicy(),
			rec: failedSource(hdr(wire.HeaderAttempts, "1"), hdr(wire.HeaderRetryAttempts, "1"),
				hdr(wire.HeaderFirstFailureTS, micros(earlier))),
			err:   errRegistry,
			topic: "_sluice.retry.1m", partition: 2, retries: 1,
			want: map[string]string{
				wire.HeaderClass: "transient", wire.HeaderAttempts: "2", wire.HeaderFirstFailureTS: micros(earlier),
				wire.HeaderRetryAttempts: "2", wire.HeaderRetryAt: micros(routeNow.Add(10 * time.Second)),
			},
		},
		{
			name: "third failure waits 20s in the 1m tier", policy: routePolicy(),
			rec:   failedSource(hdr(wire.HeaderAttempts, "2"), hdr(wire.HeaderRetryAttempts, "2")),
			err:   errRegistry,
			topic: "_sluice.retry.1m", partition: 2, retries: 1,
			want: map[string]string{
				wire.HeaderAttempts: "3", wire.HeaderRetryAttempts: "3", wire.HeaderRetryAt: micros(routeNow.Add(20 * time.Second)),
			},
		},
		{
			name: "unclassified error is retried", policy: routePolicy(), rec: failedSource(), err: errOther,
			topic: "_sluice.retry.5s", partition: 2, retries: 1,
			want: map[string]string{wire.HeaderClass: "transient", wire.HeaderError: "something else", wire.HeaderRetryAttempts: "1"},
		},
		{
			name: "failure at max attempts is dead-lettered as transient", policy: routePolicy(),
			rec:   failedSource(hdr(wire.HeaderAttempts, "3"), hdr(wire.HeaderRetryAttempts, "3"), hdr(wire.HeaderRetryAt, "1")),
			err:   errRegistry,
			topic: "purchases.dlq", partition: 5, letters: 1,
			want:   map[string]string{wire.HeaderClass: "transient", wire.HeaderAttempts: "4", wire.HeaderOriginalPartition: "5"},
			absent: retryHeaders,
		},
		{
			name: "replayed record gets a fresh retry budget", policy: routePolicy(),
			rec:   failedSource(hdr(wire.HeaderAttempts, "4"), hdr(wire.HeaderReplayed, "true")),
			err:   errRegistry,
			topic: "_sluice.retry.5s", partition: 2, retries: 1,
			want: map[string]string{
				wire.HeaderAttempts: "5", wire.HeaderRetryAttempts: "1", wire.HeaderRetryAt: micros(routeNow.Add(5 * time.Second)),
				wire.HeaderReplayed: "true",
			},
		},
		{
			name: "garbled retry attempts count as none", policy: routePolicy(),
			rec:   failedSource(hdr(wire.HeaderAttempts, "3"), hdr(wire.HeaderRetryAttempts, "three")),
			err:   errRegistry,
			topic: "_sluice.retry.5s", partition: 2, retries: 1,
			want: map[string]string{wire.HeaderAttempts: "4", wire.HeaderRetryAttempts: "1"},
		},
		{
			name:   "wait beyond every tier uses the longest",
			policy: dlq.Policy{MaxAttempts: 10, Backoff: routeBackoff, Tiers: routeTiers[:2]},
			rec:    failedSource(hdr(wire.HeaderAttempts, "4"), hdr(wire.HeaderRetryAttempts, "4")),
			err:    errRegistry,
			topic:  "_sluice.retry.1m", partition: 2, retries: 1,
			want: map[string]string{
				wire.HeaderRetryAttempts: "5", wire.HeaderRetryAt: micros(routeNow.Add(80 * time.Second)),
			},
		},
		{
			name: "retry partition is the source partition modulo the tier's",
			policy: dlq.Policy{MaxAttempts: 4, Backoff: routeBackoff,
				Tiers: []dlq.Tier{{Delay: time.Minute, Topic: "_sluice.retry.1m", Partitions: 4}}},
			rec: failedSource(), err: errRegistry,
			topic: "_sluice.retry.1m", partition: 1, retries: 1,
			want: map[string]string{wire.HeaderOriginalPartition: "5"},
		},
		{
			name: "tier without a partition count uses partition 0",
			policy: dlq.Policy{MaxAttempts: 4, Backoff: routeBackoff,
				Tiers: []dlq.Tier{{Delay: time.Minute, Topic: "_sluice.retry.1m"}}},
			rec: failedSource(), err: errRegistry,
			topic: "_sluice.retry.1m", partition: 0, retries: 1,
			want: map[string]string{wire.HeaderOriginalPartition: "5"},
		},
		{
			name: "no tiers: transient goes to the DLQ", policy: dlq.Policy{MaxAttempts: 4, Backoff: routeBackoff},
			rec: failedSource(), err: errRegistry,
			topic: "purchases.dlq", partition: 5, letters: 1,
			want:   map[string]string{wire.HeaderClass: "transient", wire.HeaderAttempts: "1"},
			absent: retryHeaders,
		},
		{
			name: "max attempts below one means one", policy: dlq.Policy{Backoff: routeBackoff, Tiers: routeTiers},
			rec: failedSource(), err: errRegistry,
			topic: "purchases.dlq", partition: 5, letters: 1,
			want:   map[string]string{wire.HeaderClass: "transient", wire.HeaderAttempts: "1"},
			absent: retryHeaders,
		},
		{
			name: "wait error passes through", policy: routePolicy(), rec: failedSource(), err: wait, passes: true,
		},
		{
			name: "wrapped wait error passes through", policy: routePolicy(), rec: failedSource(),
			err: fmt.Errorf("retry stage: %w", wait), passes: true,
		},
		{
			name: "transient error while ctx is done passes through", policy: routePolicy(), rec: failedSource(),
			err: errRegistry, cancelled: true, passes: true,
		},
		{
			name: "permanent error while ctx is done passes through", policy: routePolicy(), rec: failedSource(),
			err: errBad, cancelled: true, passes: true,
		},
		{
			name: "given-up record while ctx is done is still routed", policy: routePolicy(), rec: failedSource(),
			err: &dlq.AttemptsError{Attempts: 2, Err: errRegistry}, cancelled: true,
			topic: "_sluice.retry.5s", partition: 2, retries: 1,
			want: map[string]string{wire.HeaderRetryAttempts: "1", wire.HeaderAttempts: "1"},
		},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var obs observed
			f := newRoute(tt.policy, func() time.Time { return routeNow }, &obs)
			ctx := t.Context()
			if tt.cancelled {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			src := tt.rec
			before := slices.Clone(src.Headers)
			err, out := run(ctx, f(failWith(tt.err)), src)
			if !slices.EqualFunc(src.Headers, before, eqHeader) {
				t.Errorf("source headers changed: %v", src.Headers)
			}
			if tt.passes {
				if err != tt.err {
					t.Errorf("error = %v, want %v itself", err, tt.err)
				}
				if len(out) != 0 || len(obs.letters)+len(obs.retries) != 0 {
					t.Errorf("emitted %d records, %d letters, %d retries; want none", len(out), len(obs.letters), len(obs.retries))
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v, want nil (handled)", err)
			}
			if len(out) != 1 {
				t.Fatalf("emitted %d records, want 1", len(out))
			}
			r := out[0]
			if r.Topic != tt.topic || r.Partition != tt.partition {
				t.Errorf("emitted to %s/%d, want %s/%d", r.Topic, r.Partition, tt.topic, tt.partition)
			}
			if string(r.Key) != "u-42" || string(r.Value) != "body" || !r.Timestamp.Equal(recTS) {
				t.Errorf("key/value/timestamp = %q/%q/%v, want the source's", r.Key, r.Value, r.Timestamp)
			}
			checkHeaders(t, r, tt.want, tt.absent)
			if len(obs.letters) != tt.letters || len(obs.retries) != tt.retries {
				t.Errorf("OnLetter %d, OnRetry %d calls; want %d, %d", len(obs.letters), len(obs.retries), tt.letters, tt.retries)
			}
			if len(obs.retries) == 1 && obs.retries[0].Topic != r.Topic {
				t.Errorf("OnRetry tier %s, record in %s", obs.retries[0].Topic, r.Topic)
			}
			if len(obs.letters) == 1 && (!errors.Is(tt.err, obs.letters[0].Err) || obs.letters[0].Err.Error() != headers(t, r)[wire.HeaderError]) {
				t.Errorf("OnLetter error = %v, want the failure in %v, as in the sluice-error header", obs.letters[0].Err, tt.err)
			}
		})
	}
}

func TestFailuresHandlerSuccess(t *testing.T) {
	var obs observed
	f := newRoute(routePolicy(), func() time.Time { return routeNow }, &obs)
	output := &kgo.Record{Topic: "purchases.clean", Value: []byte("out")}
	h := f(func(_ context.Context, _ *kgo.Record, emit func(*kgo.Record)) error {
		emit(output)
		return nil
	})
	err, out := run(t.Context(), h, failedSource())
	if err != nil {
		t.Fatalf("error = %v", err)
	}
	if len(out) != 1 || out[0] != output {
		t.Errorf("emitted %v, want the handler's output only", out)
	}
	if len(obs.letters)+len(obs.retries) != 0 {
		t.Errorf("hooks called on success: %+v", obs)
	}
}

// A record that keeps failing moves through the tiers on the exact schedule 5s, 10s, 20s
// and is dead-lettered on its fourth failure, each redelivery rebuilt by Redelivery.
func TestFailuresRetrySchedule(t *testing.T) {
	clock := routeNow
	var obs observed
	f := newRoute(routePolicy(), func() time.Time { return clock }, &obs)
	h := f(failWith(dlq.AsTransient(errors.New("registry timeout"))))

	want := []struct {
		topic string
		wait  time.Duration
	}{
		{"_sluice.retry.5s", 5 * time.Second},
		{"_sluice.retry.1m", 10 * time.Second},
		{"_sluice.retry.1m", 20 * time.Second},
	}
	rec := failedSource()
	size := -1
	for i, w := range want {
		round := i + 1
		err, out := run(t.Context(), h, rec)
		if err != nil || len(out) != 1 {
			t.Fatalf("round %d: error %v, %d records; want nil and 1", round, err, len(out))
		}
		r := out[0]
		if r.Topic != w.topic || r.Partition != 2 {
			t.Errorf("round %d: in %s/%d, want %s/2", round, r.Topic, r.Partition, w.topic)
		}
		at, ok := wire.RetryAt(r)
		if !ok || !at.Equal(clock.Add(w.wait)) {
			t.Errorf("round %d: retry at %v (%v), want now+%s = %v", round, at, ok, w.wait, clock.Add(w.wait))
		}
		checkHeaders(t, r, map[string]string{
			wire.HeaderRetryAttempts:  strconv.Itoa(round),
			wire.HeaderAttempts:       strconv.Itoa(round),
			wire.HeaderFirstFailureTS: micros(routeNow),
			wire.HeaderClass:          "transient",
		}, nil)
		if size >= 0 && len(r.Headers) != size {
			t.Errorf("round %d: %d headers, want %d as before", round, len(r.Headers), size)
		}
		size = len(r.Headers)

		// The retry stage delivers it back once its time comes.
		clock = at
		next, ok := dlq.Redelivery(r)
		if !ok {
			t.Fatalf("round %d: Redelivery failed on %v", round, r.Headers)
		}
		next.Offset = rec.Offset + 100 // a new offset in the source topic
		rec = next
	}
	err, out := run(t.Context(), h, rec)
	if err != nil || len(out) != 1 {
		t.Fatalf("last round: error %v, %d records; want nil and 1", err, len(out))
	}
	r := out[0]
	if r.Topic != "purchases.dlq" || r.Partition != 5 {
		t.Errorf("last round in %s/%d, want purchases.dlq/5", r.Topic, r.Partition)
	}
	checkHeaders(t, r, map[string]string{
		wire.HeaderClass:          "transient",
		wire.HeaderAttempts:       "4",
		wire.HeaderFirstFailureTS: micros(routeNow),
		wire.HeaderOriginalTopic:  "purchases",
	}, []string{wire.HeaderRetryAt, wire.HeaderRetryAttempts})
	if len(obs.retries) != 3 || len(obs.letters) != 1 {
		t.Errorf("%d retries, %d letters; want 3, 1", len(obs.retries), len(obs.letters))
	}
}

func TestPolicyTier(t *testing.T) {
	cases := []struct {
		name  string
		tiers []dlq.Tier
		d     time.Duration
		want  string
	}{
		{"zero wait takes the shortest", routeTiers, 0, "_sluice.retry.5s"},
		{"exactly a tier's delay", routeTiers, 5 * time.Second, "_sluice.retry.5s"},
		{"just above a tier", routeTiers, 5*time.Second + time.Nanosecond, "_sluice.retry.1m"},
		{"between tiers", routeTiers, 20 * time.Second, "_sluice.retry.1m"},
		{"the longest tier", routeTiers, 10 * time.Minute, "_sluice.retry.10m"},
		{"beyond every tier takes the longest", routeTiers, time.Hour, "_sluice.retry.10m"},
		{"single tier", routeTiers[1:2], time.Hour, "_sluice.retry.1m"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p := dlq.Policy{Tiers: tt.tiers}
			if got := p.Tier(tt.d).Topic; got != tt.want {
				t.Errorf("Tier(%s) = %s, want %s", tt.d, got, tt.want)
			}
		})
	}
}

// orderedStep is one delivery in ordered mode and what the handler must do with it.
type orderedStep struct {
	offset int64
	err    error         // nil: the delivery succeeds
	wait   time.Duration // > 0: want a WaitError until now+wait
	dlq    string        // != "": want a dead letter with this sluice-attempts
}

func TestFailuresOrdered(t *testing.T) {
	errT := dlq.AsTransient(errors.New("registry timeout"))
	errP := dlq.AsPermanent(errors.New("bad amount"))
	cases := []struct {
		name  string
		prior []kgo.RecordHeader // headers of every delivered record
		max   int
		steps []orderedStep
	}{
		{"head waits 5s, 10s, then is dead-lettered", nil, 3, []orderedStep{
			{offset: 41, err: errT, wait: 5 * time.Second},
			{offset: 41, err: errT, wait: 10 * time.Second},
			{offset: 41, err: errT, dlq: "3"},
		}},
		{"the next head starts over", nil, 2, []orderedStep{
			{offset: 41, err: errT, wait: 5 * time.Second},
			{offset: 41, err: errT, dlq: "2"},
			{offset: 42, err: errT, wait: 5 * time.Second},
			{offset: 42, err: errT, dlq: "2"},
		}},
		{"success resets the head", nil, 3, []orderedStep{
			{offset: 41, err: errT, wait: 5 * time.Second},
			{offset: 41, err: errT, wait: 10 * time.Second},
			{offset: 41},
			{offset: 41, err: errT, wait: 5 * time.Second},
			{offset: 41, err: errT, wait: 10 * time.Second},
			{offset: 41, err: errT, dlq: "3"},
		}},
		{"a different offset resets the count", nil, 3, []orderedStep{
			{offset: 41, err: errT, wait: 5 * time.Second},
			{offset: 41, err: errT, wait: 10 * time.Second},
			{offset: 42, err: errT, wait: 5 * time.Second},
			{offset: 42, err: errT, wait: 10 * time.Second},
			{offset: 42, err: errT, dlq: "3"},
		}},
		{"earlier attempts carry on", []kgo.RecordHeader{hdr(wire.HeaderAttempts, "2")}, 2, []orderedStep{
			{offset: 41, err: errT, wait: 5 * time.Second},
			{offset: 41, err: errT, dlq: "4"},
		}},
		{"permanent is dead-lettered at once", nil, 3, []orderedStep{
			{offset: 41, err: errP, dlq: "1"},
		}},
		{"max attempts one dead-letters the first failure", nil, 1, []orderedStep{
			{offset: 41, err: errT, dlq: "1"},
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: routeNow}
			var obs observed
			p := dlq.Policy{MaxAttempts: tt.max, Backoff: routeBackoff, Tiers: routeTiers, Ordered: true}
			f := newRoute(p, clk.now, &obs)
			var stepErr error
			h := f(func(context.Context, *kgo.Record, func(*kgo.Record)) error { return stepErr })
			first := clk.t // first failure of the current head
			for i, s := range tt.steps {
				rec := failedSource(tt.prior...)
				rec.Offset = s.offset
				stepErr = s.err
				if i > 0 && tt.steps[i-1].offset != s.offset {
					first = clk.t
				}
				err, out := run(t.Context(), h, rec)
				switch {
				case s.wait > 0:
					w, ok := dlq.AsWait(err)
					if !ok {
						t.Fatalf("step %d: error = %v, want a WaitError", i, err)
					}
					if !w.Until.Equal(clk.t.Add(s.wait)) || w.Reason != "ordered-retry" || !errors.Is(w, s.err) {
						t.Errorf("step %d: wait until %v (%s, %v), want %v (ordered-retry, %v)",
							i, w.Until, w.Reason, w.Err, clk.t.Add(s.wait), s.err)
					}
					if len(out) != 0 {
						t.Errorf("step %d: emitted %d records while waiting", i, len(out))
					}
					clk.advance(s.wait)
				case s.dlq != "":
					if err != nil || len(out) != 1 {
						t.Fatalf("step %d: error %v, %d records; want a dead letter", i, err, len(out))
					}
					if out[0].Topic != "purchases.dlq" || out[0].Partition != 5 {
						t.Errorf("step %d: in %s/%d, want purchases.dlq/5", i, out[0].Topic, out[0].Partition)
					}
					checkHeaders(t, out[0], map[string]string{
						wire.HeaderAttempts:       s.dlq,
						wire.HeaderClass:          string(dlq.ClassOf(s.err)),
						wire.HeaderOriginalOffset: strconv.FormatInt(s.offset, 10),
						wire.HeaderFirstFailureTS: micros(first),
					}, []string{wire.HeaderRetryAt, wire.HeaderRetryAttempts})
					clk.advance(time.Second)
					first = clk.t
				default:
					if err != nil || len(out) != 0 {
						t.Errorf("step %d: error %v, %d records; want nil and none", i, err, len(out))
					}
					clk.advance(time.Second)
					first = clk.t
				}
			}
			if len(obs.retries) != 0 {
				t.Errorf("ordered mode sent %d records to retry topics", len(obs.retries))
			}
		})
	}
}

func TestRetryRecord(t *testing.T) {
	at := routeNow.Add(20 * time.Second)
	l := dlq.Letter{Stage: "clean", Class: dlq.Transient, Err: errors.New("timeout"), Attempts: 3, FirstFailure: failedAt}
	cases := []struct {
		name      string
		rec       *kgo.Record
		tier      dlq.Tier
		partition int32
	}{
		{"fresh record", failedSource(), routeTiers[1], 2},
		{"stale letter and retry headers are replaced", failedSource(
			hdr(wire.HeaderError, "old"), hdr(wire.HeaderRetryAt, "1"), hdr(wire.HeaderRetryAttempts, "9"),
			hdr(wire.HeaderOriginalTopic, "elsewhere"), hdr("sluice-retry-note", "stale")), routeTiers[1], 2},
		{"partition modulo tier partitions", failedSource(), dlq.Tier{Topic: "_sluice.retry.1m", Partitions: 5}, 0},
		{"tier without partitions", failedSource(), dlq.Tier{Topic: "_sluice.retry.1m"}, 0},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r := dlq.RetryRecord(tt.rec, tt.tier, l, 2, at)
			if r.Topic != tt.tier.Topic || r.Partition != tt.partition {
				t.Errorf("in %s/%d, want %s/%d", r.Topic, r.Partition, tt.tier.Topic, tt.partition)
			}
			if string(r.Key) != "u-42" || string(r.Value) != "body" || !r.Timestamp.Equal(recTS) {
				t.Errorf("key/value/timestamp = %q/%q/%v, want the source's", r.Key, r.Value, r.Timestamp)
			}
			checkHeaders(t, r, map[string]string{
				wire.HeaderClass: "transient", wire.HeaderError: "timeout", wire.HeaderStage: "clean",
				wire.HeaderOriginalTopic: "purchases", wire.HeaderOriginalPartition: "5", wire.HeaderOriginalOffset: "41",
				wire.HeaderAttempts: "3", wire.HeaderFirstFailureTS: micros(failedAt),
				wire.HeaderRetryAttempts: "2", wire.HeaderRetryAt: micros(at),
			}, []string{"sluice-retry-note"})
			if n := len(userHeaders) + len(letterHeaders) + 2; len(r.Headers) != n {
				t.Errorf("%d headers, want %d: %v", len(r.Headers), n, r.Headers)
			}
		})
	}
}

func TestRetryAt(t *testing.T) {
	at := time.Date(2026, 11, 27, 12, 0, 5, 123456000, time.UTC)
	cases := []struct {
		name    string
		headers []kgo.RecordHeader
		want    time.Time
		ok      bool
	}{
		{"readable", []kgo.RecordHeader{hdr(wire.HeaderRetryAt, micros(at))}, at, true},
		{"absent", nil, time.Time{}, false},
		{"garbled", []kgo.RecordHeader{hdr(wire.HeaderRetryAt, "soon")}, time.Time{}, false},
		{"empty", []kgo.RecordHeader{hdr(wire.HeaderRetryAt, "")}, time.Time{}, false},
		{"repeated: last wins", []kgo.RecordHeader{hdr(wire.HeaderRetryAt, "1"), hdr(wire.HeaderRetryAt, micros(at))}, at, true},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := wire.RetryAt(&kgo.Record{Headers: tt.headers})
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("RetryAt = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRedelivery(t *testing.T) {
	l := dlq.Letter{Stage: "clean", Class: dlq.Transient, Err: errors.New("timeout"), Attempts: 2, FirstFailure: failedAt}
	waiting := dlq.RetryRecord(failedSource(), routeTiers[0], l, 2, routeNow)
	waiting.Offset = 7

	r, ok := dlq.Redelivery(waiting)
	if !ok {
		t.Fatalf("Redelivery failed on %v", waiting.Headers)
	}
	if r.Topic != "purchases" || r.Partition != 5 {
		t.Errorf("to %s/%d, want purchases/5", r.Topic, r.Partition)
	}
	if string(r.Key) != "u-42" || string(r.Value) != "body" || !r.Timestamp.Equal(recTS) {
		t.Errorf("key/value/timestamp = %q/%q/%v, want the source's", r.Key, r.Value, r.Timestamp)
	}
	checkHeaders(t, r, map[string]string{
		wire.HeaderAttempts:       "2",
		wire.HeaderRetryAttempts:  "2",
		wire.HeaderFirstFailureTS: micros(failedAt),
	}, []string{
		wire.HeaderClass, wire.HeaderError, wire.HeaderStage, wire.HeaderOriginalTopic,
		wire.HeaderOriginalPartition, wire.HeaderOriginalOffset, wire.HeaderRetryAt,
	})
	if n := len(userHeaders) + 3; len(r.Headers) != n {
		t.Errorf("%d headers, want %d: %v", len(r.Headers), n, r.Headers)
	}
}

func TestRedeliveryUnreadableOrigin(t *testing.T) {
	cases := []struct {
		name    string
		headers []kgo.RecordHeader
	}{
		{"no headers", nil},
		{"no topic", []kgo.RecordHeader{hdr(wire.HeaderOriginalPartition, "1")}},
		{"empty topic", []kgo.RecordHeader{hdr(wire.HeaderOriginalTopic, ""), hdr(wire.HeaderOriginalPartition, "1")}},
		{"no partition", []kgo.RecordHeader{hdr(wire.HeaderOriginalTopic, "purchases")}},
		{"garbled partition", []kgo.RecordHeader{hdr(wire.HeaderOriginalTopic, "purchases"), hdr(wire.HeaderOriginalPartition, "two")}},
		{"negative partition", []kgo.RecordHeader{hdr(wire.HeaderOriginalTopic, "purchases"), hdr(wire.HeaderOriginalPartition, "-1")}},
		{"partition beyond int32", []kgo.RecordHeader{hdr(wire.HeaderOriginalTopic, "purchases"), hdr(wire.HeaderOriginalPartition, "2147483648")}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if r, ok := dlq.Redelivery(&kgo.Record{Topic: "_sluice.retry.5s", Headers: tt.headers}); ok {
				t.Errorf("Redelivery = %+v, true; want false", r)
			}
		})
	}
}

// A record that goes through a retry topic again and again keeps one set of sluice
// headers: its size stays bounded.
func TestRedeliveryRoundTripsBounded(t *testing.T) {
	rec := failedSource()
	size := -1
	for round := 1; round <= 5; round++ {
		l := dlq.Letter{Stage: "clean", Class: dlq.Transient, Err: fmt.Errorf("timeout %d", round), Attempts: round, FirstFailure: failedAt}
		waiting := dlq.RetryRecord(rec, routeTiers[round%len(routeTiers)], l, round, routeNow.Add(time.Duration(round)*time.Second))
		if size >= 0 && len(waiting.Headers) != size {
			t.Errorf("round %d: retry record has %d headers, want %d", round, len(waiting.Headers), size)
		}
		size = len(waiting.Headers)
		checkHeaders(t, waiting, map[string]string{
			wire.HeaderError:         fmt.Sprintf("timeout %d", round),
			wire.HeaderRetryAttempts: strconv.Itoa(round),
		}, nil)
		next, ok := dlq.Redelivery(waiting)
		if !ok {
			t.Fatalf("round %d: Redelivery failed", round)
		}
		if n := len(userHeaders) + 3; len(next.Headers) != n {
			t.Errorf("round %d: redelivery has %d headers, want %d: %v", round, len(next.Headers), n, next.Headers)
		}
		checkHeaders(t, next, map[string]string{
			wire.HeaderAttempts:      strconv.Itoa(round),
			wire.HeaderRetryAttempts: strconv.Itoa(round),
		}, nil)
		if next.Topic != "purchases" || next.Partition != 5 {
			t.Fatalf("round %d: to %s/%d, want purchases/5", round, next.Topic, next.Partition)
		}
		rec = next
	}
}
