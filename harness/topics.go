package harness

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// Record is a record read back from a topic, its value decoded through the registry.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Headers   map[string]string
	// Value is the decoded value (Avro-native), nil if it did not decode.
	Value map[string]any
	// DecodeErr is why Value is nil.
	DecodeErr error
	Raw       *kgo.Record
}

// ReadAll reads topic from its start to its current end (read_committed: up to the last
// stable offset) and returns every committed record in partition order.
func (p *Pipeline) ReadAll(topic string) []Record {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), 30*time.Second)
	defer cancel()
	var out []Record
	err := kafka.ReadCommitted(ctx, p.Deps.Kafka, topic, nil, func(r *kgo.Record) error {
		out = append(out, p.decode(ctx, r))
		return nil
	})
	if err != nil {
		p.t.Fatalf("read %s: %v", topic, err)
	}
	return out
}

func (p *Pipeline) decode(ctx context.Context, r *kgo.Record) Record {
	rec := Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: string(r.Key),
		Headers: map[string]string{}, Raw: r}
	for _, h := range r.Headers {
		rec.Headers[h.Key] = string(h.Value)
	}
	if r.Value != nil {
		rec.Value, _, rec.DecodeErr = p.Schemas.Decode(ctx, r.Value)
	}
	return rec
}

// WaitCaughtUp waits until the consumer group (e.g. "sluice.clean") has committed every
// record of topics, or fails the test after timeout. It polls the broker: the only wait
// in the harness that is not driven by an event it can observe directly.
func (p *Pipeline) WaitCaughtUp(group string, timeout time.Duration, topics ...string) {
	p.t.Helper()
	if !p.TryCaughtUp(group, timeout, topics...) {
		lag, err := p.lag(group, topics...)
		p.t.Fatalf("group %s not caught up on %v after %s: lag %d %v", group, topics, timeout, lag, err)
	}
}

// Lag returns how many records of topics a read_committed consumer would see after
// group's committed offsets (0: caught up).
func (p *Pipeline) Lag(group string, topics ...string) int64 {
	p.t.Helper()
	lag, err := p.lag(group, topics...)
	if err != nil {
		p.t.Fatalf("lag of %s: %v", group, err)
	}
	return lag
}

// TryCaughtUp is WaitCaughtUp that reports false on timeout instead of failing: for
// loops that move a fake clock until a stage that waits on it has caught up.
func (p *Pipeline) TryCaughtUp(group string, timeout time.Duration, topics ...string) bool {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		lag, err := p.lag(group, topics...)
		if err == nil && lag == 0 {
			return true
		}
		last = fmt.Sprint(lag, err)
		if os.Getenv("SLUICE_TEST_LOG") != "" {
			fmt.Fprintf(os.Stderr, "harness: %s lag %s\n", group, last)
		}
		if time.Now().After(deadline) {
			return false
		}
		tm := time.NewTimer(20 * time.Millisecond)
		select {
		case <-p.t.Context().Done():
			tm.Stop()
			p.t.Fatal("test ended while waiting")
		case <-tm.C:
		}
	}
}

func (p *Pipeline) lag(group string, topics ...string) (int64, error) {
	ctx, cancel := context.WithTimeout(p.t.Context(), 5*time.Second)
	defer cancel()
	ends, err := p.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return -1, err
	}
	committed, err := p.adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1, err
	}
	return p.lagAt(ctx, topics, ends, func(t string, part int32) int64 {
		c, ok := committed.Lookup(t, part)
		if ok && c.Err == nil {
			return c.At
		}
		return 0
	})
}

// lagAt counts the records of topics after the offsets at returns that a read_committed
// consumer would see, given their end offsets.
func (p *Pipeline) lagAt(ctx context.Context, topics []string, ends kadm.ListedOffsets, at func(topic string, partition int32) int64) (int64, error) {
	// The last stable offsets: a transaction still open on a partition hides records a
	// read_committed reader will see once it commits, so that partition is not caught up.
	stable, err := p.adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return -1, err
	}
	var lag int64
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		at := at(o.Topic, o.Partition)
		d := o.Offset - at
		if d <= 0 {
			return
		}
		if s, ok := stable.Lookup(o.Topic, o.Partition); ok && s.Err == nil && s.Offset < o.Offset {
			lag += d // an open transaction: wait for it to end
			return
		}
		if d > 64 {
			lag += d
			return
		}
		// Any topic may end with offsets (raw topics too: the retry stage delivers
		// records back to them in transactions) a read_committed consumer never
		// sees (commit and abort markers, records of aborted transactions), which
		// franz-go does not count in committed offsets. Count what it would see.
		n, err := p.visible(ctx, o.Topic, o.Partition, at, o.Offset)
		if err != nil {
			ferr = err
		}
		lag += n
	})
	return lag, ferr
}

// visible counts the records in [from, to) of topic/partition that a read_committed
// consumer delivers.
func (p *Pipeline) visible(ctx context.Context, topic string, partition int32, from, to int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append(p.Deps.Kafka.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var n int64
	next := from
	for next < to {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			// Unstable (an open transaction): not caught up.
			return max(n, 1), nil
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= to {
				return
			}
			next = r.Offset + 1
			if !r.Attrs.IsControl() {
				n++
			}
		})
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			// Aborted records are skipped without being delivered: the last stable
			// offset tells how far the fetch got.
			if len(fp.Records) == 0 && fp.LastStableOffset >= to {
				next = to
			}
		})
	}
	return n, nil
}

// DecodeAll is a convenience for tests that want only values.
func DecodeAll(rs []Record) []map[string]any {
	out := make([]map[string]any, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Value)
	}
	return out
}

// Consume reads topic from its start (read_committed) until it has n records or timeout
// passes, and returns what it read: fewer than n means the deadline passed.
func (p *Pipeline) Consume(topic string, n int, timeout time.Duration) []Record {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), timeout)
	defer cancel()
	cl, err := kgo.NewClient(append(p.Deps.Kafka.Opts(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)...)
	if err != nil {
		p.t.Fatal(err)
	}
	defer cl.Close()
	var out []Record
	for len(out) < n {
		fs := cl.PollRecords(ctx, n-len(out))
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, p.decode(ctx, r)) })
	}
	return out
}

// Admin is an admin client on the pipeline's brokers.
func (p *Pipeline) Admin() *kadm.Client { return p.adm }
