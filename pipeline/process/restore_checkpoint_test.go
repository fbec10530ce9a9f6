package process

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// A store with a local checkpoint restores only the changelog records after it; one
// without (or on the memory backend) restores fully; a checkpoint beyond the changelog's
// end (the topic was recreated) is not trusted: full restore, with a WARN that says why.
// Every way ends in the state a full restore gives.
func TestRestoreFromCheckpoint(t *testing.T) {
	kc, adm, _ := changelogCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// Tombstones stay a day (changelogCluster keeps them for no time at all, under which
	// no checkpoint is recent enough for a tail restore).
	if rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "delete.retention.ms", Value: kadm.StringPtr("86400000")}}, changelog); err != nil || rs[0].Err != nil {
		t.Fatalf("alter delete.retention.ms: %v %v", err, rs)
	}
	dir := t.TempDir()
	open := func() *stream.Store[int64] {
		b, err := pebblestore.Open[int64](dir, stream.Int64Codec{}, pebblestore.Options{CacheBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return stream.NewStoreOn[int64]("dedup", stream.Int64Codec{}, b)
	}
	view := func(s *stream.Store[int64]) map[string]int64 {
		m := map[string]int64{}
		s.Range(func(k string, v int64) bool { m[k] = v; return true })
		return m
	}
	oracle := func() map[string]int64 {
		s := stream.NewStore[int64]("dedup", stream.Int64Codec{})
		if _, err := restore(ctx, kc, changelog, 0, s); err != nil {
			t.Fatal(err)
		}
		return view(s)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	check := func(step string, s Changelogged, wantTail bool, wantN, n int, tail bool, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if tail != wantTail || n != wantN {
			t.Fatalf("%s: restored %d records (tail %v), want %d (tail %v)", step, n, tail, wantN, wantTail)
		}
		if cp, ok := s.Checkpoint(); ok {
			if _, end, err := kafka.PartitionBounds(ctx, kc, changelog, 0); err != nil || cp != end {
				t.Fatalf("%s: checkpoint %d, want the end %d (%v)", step, cp, end, err)
			}
		}
	}

	writeTxns(t, kc, []txn{
		{true, []write{put("a", 1), put("b", 2)}},
		{false, []write{put("x", 9)}},
		{true, []write{del("a"), put("c", 3)}},
	})
	s := open()
	n, tail, err := restoreFrom(ctx, kc, changelog, 0, s, time.Now(), log)
	check("first start", s, false, 4, n, tail, err)
	if got, want := view(s), oracle(); !maps.Equal(got, want) {
		t.Fatalf("first start: %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "no local checkpoint") {
		t.Fatalf("first start on a new directory: no WARN saying there is no checkpoint: %q", logs.String())
	}
	logs.Reset()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	writeTxns(t, kc, []txn{{true, []write{put("d", 4), put("b", 20)}}, {false, []write{del("c")}}})
	s = open()
	n, tail, err = restoreFrom(ctx, kc, changelog, 0, s, time.Now(), log)
	check("restart", s, true, 2, n, tail, err)
	if got, want := view(s), oracle(); !maps.Equal(got, want) {
		t.Fatalf("restart: %v, want %v", got, want)
	}
	if logs.Len() > 0 {
		t.Fatalf("WARN on a good checkpoint: %s", logs.String())
	}

	// A checkpoint older than half the tombstones' retention: compaction may have removed
	// tombstones written after it.
	writeTxns(t, kc, []txn{{true, []write{del("d")}}})
	n, tail, err = restoreFrom(ctx, kc, changelog, 0, s, time.Now().Add(13*time.Hour), log)
	check("checkpoint older than half the delete retention", s, false, 7, n, tail, err)
	if got, want := view(s), oracle(); !maps.Equal(got, want) {
		t.Fatalf("checkpoint older than half the delete retention: %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "older than half the changelog's delete.retention.ms") {
		t.Fatalf("no WARN saying the checkpoint is too old: %q", logs.String())
	}
	logs.Reset()

	// A checkpoint beyond the end, as after the changelog topic was recreated.
	if err := s.CommitAt(1000); err != nil {
		t.Fatal(err)
	}
	s.Put("stale", 1)
	if err := s.CommitAt(stream.NoCheckpoint); err != nil {
		t.Fatal(err)
	}
	n, tail, err = restoreFrom(ctx, kc, changelog, 0, s, time.Now(), log)
	check("checkpoint beyond the end", s, false, 7, n, tail, err)
	if got, want := view(s), oracle(); !maps.Equal(got, want) {
		t.Fatalf("checkpoint beyond the end: %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "beyond the changelog's end") || !strings.Contains(logs.String(), "checkpoint=1000") {
		t.Fatalf("no WARN naming the checkpoint: %q", logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The memory backend has no checkpoint: full restore, as restore does.
	m := stream.NewStore[int64]("dedup", stream.Int64Codec{})
	n, tail, err = restoreFrom(ctx, kc, changelog, 0, m, time.Now(), log)
	check("memory", m, false, 7, n, tail, err)
	if got, want := view(m), oracle(); !maps.Equal(got, want) {
		t.Fatalf("memory: %v, want %v", got, want)
	}
}
