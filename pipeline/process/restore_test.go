package process

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/stream"
)

// write is one changelog record; del writes a tombstone.
type write struct {
	key string
	val int64
	del bool
}

// txn is one transaction of writes to the changelog partition under test.
type txn struct {
	commit bool
	writes []write
}

func put(k string, v int64) write { return write{key: k, val: v} }
func del(k string) write          { return write{key: k, del: true} }

const changelog = "_sluice.clean.purchases.dedup-changelog"

// A task's state is exactly what committed transactions wrote to its changelog
// partition: aborted writes and other partitions are ignored, tombstones delete, and the
// restore ends at the last stable offset even when the log ends with a transaction marker.
func TestRestore(t *testing.T) {
	cases := []struct {
		name    string
		txns    []txn
		compact bool
		want    map[string]int64
		// wantN is the records applied.
		wantN int
	}{
		{
			name:  "empty changelog",
			want:  map[string]int64{},
			wantN: 0,
		},
		{
			name:  "one committed transaction, ends with a commit marker",
			txns:  []txn{{true, []write{put("a", 1), put("b", 2), put("c", 3), del("b")}}},
			want:  map[string]int64{"a": 1, "c": 3},
			wantN: 4,
		},
		{
			name: "ends with an aborted transaction",
			txns: []txn{
				{true, []write{put("a", 1), put("b", 2)}},
				{false, []write{put("a", 99), put("d", 4), del("b")}},
			},
			want:  map[string]int64{"a": 1, "b": 2},
			wantN: 2,
		},
		{
			name: "aborted between committed",
			txns: []txn{
				{true, []write{put("a", 1), put("c", 3)}},
				{false, []write{put("a", 99), put("e", 5), del("c")}},
				{true, []write{put("b", 2), del("a")}},
			},
			want:  map[string]int64{"b": 2, "c": 3},
			wantN: 4,
		},
		{
			name:  "only aborted",
			txns:  []txn{{false, []write{put("a", 1)}}},
			want:  map[string]int64{},
			wantN: 0,
		},
		{
			name: "compacted",
			txns: []txn{
				{true, []write{put("a", 1), put("c", 3)}},
				{true, []write{put("a", 2), del("c")}},
				{false, []write{put("a", 99), put("e", 5)}},
				{true, []write{put("b", 2)}},
				{false, []write{del("b")}},
			},
			compact: true,
			want:    map[string]int64{"a": 2, "b": 2},
			// Compaction keeps the newest a and b and drops c with its tombstone.
			wantN: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kc, _, cluster := changelogCluster(t)
			writeTxns(t, kc, c.txns)
			if c.compact {
				cluster.Compact()
			}

			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			s := stream.NewStore[int64]("dedup", stream.Int64Codec{})
			n, err := restore(ctx, kc, changelog, 0, s)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if n != c.wantN {
				t.Errorf("restore applied %d records, want %d", n, c.wantN)
			}
			got := map[string]int64{}
			s.Range(func(k string, v int64) bool { got[k] = v; return true })
			if !maps.Equal(got, c.want) {
				t.Errorf("restored %v, want %v", got, c.want)
			}
			if s.Len() != len(c.want) || s.Dirty() {
				t.Errorf("Len %d Dirty %v, want %d committed keys and nothing pending", s.Len(), s.Dirty(), len(c.want))
			}
		})
	}
}

// A changelog record the store cannot decode fails the restore, naming where it is.
func TestRestoreBadRecord(t *testing.T) {
	kc, _, _ := changelogCluster(t)
	cl := txnClient(t, kc)
	ctx := t.Context()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx,
		&kgo.Record{Key: []byte("a"), Value: stream.Int64Codec{}.Encode(nil, 1)},
		&kgo.Record{Key: []byte("b"), Value: []byte{1, 2, 3}},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	s := stream.NewStore[int64]("dedup", stream.Int64Codec{})
	_, err := restore(ctx, kc, changelog, 0, s)
	if err == nil || !strings.Contains(err.Error(), changelog+"/0@1") {
		t.Fatalf("restore = %v, want an error naming %s/0@1", err, changelog)
	}
}

// changelogCluster starts a broker with the compacted two-partition changelog topic.
func changelogCluster(t *testing.T) (kafka.Config, *kadm.Client, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kc := kafka.Config{Brokers: c.ListenAddrs()}
	cl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	// delete.retention.ms 0: compaction drops tombstones at once.
	resp, err := adm.CreateTopic(t.Context(), 2, -1, map[string]*string{
		"cleanup.policy":      kadm.StringPtr("compact"),
		"delete.retention.ms": kadm.StringPtr("0"),
	}, changelog)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", changelog, err)
	}
	return kc, adm, c
}

func txnClient(t *testing.T, kc kafka.Config) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(kc.Opts(),
		kgo.TransactionalID("writer"),
		kgo.DefaultProduceTopic(changelog),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// writeTxns writes each transaction's records to partition 0, plus a decoy record for
// every key to partition 1, which restoring partition 0 must not see.
func writeTxns(t *testing.T, kc kafka.Config, txns []txn) {
	t.Helper()
	cl := txnClient(t, kc)
	ctx := t.Context()
	for i, x := range txns {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for _, w := range x.writes {
			r := &kgo.Record{Partition: 0, Key: []byte(w.key)}
			if !w.del {
				r.Value = stream.Int64Codec{}.Encode(nil, w.val)
			}
			recs = append(recs, r,
				&kgo.Record{Partition: 1, Key: []byte(w.key), Value: stream.Int64Codec{}.Encode(nil, -1)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("txn %d: produce: %v", i, err)
		}
		end := kgo.TryAbort
		if x.commit {
			end = kgo.TryCommit
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatalf("txn %d: end: %v", i, err)
		}
	}
}
