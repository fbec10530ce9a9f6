package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrBufferFull is returned by Producer.Produce when the producer already buffers its
// maximum bytes or records: the caller should shed load (ingest answers 503).
var ErrBufferFull = errors.New("kafka: producer buffer full")

// Producer writes records with acks=all and idempotence and reports only when every
// record of a call is acknowledged. Memory is bounded: a full buffer fails fast.
type Producer struct {
	cl *kgo.Client
}

// ProducerOptions tune a Producer.
type ProducerOptions struct {
	// MaxBufferedBytes bounds buffered record bytes. Default 64 MiB.
	MaxBufferedBytes int64
	// MaxBufferedRecords bounds buffered records. Default 100000.
	MaxBufferedRecords int
}

// NewProducer returns a Producer. It does not contact the brokers.
func NewProducer(cfg Config, o ProducerOptions) (*Producer, error) {
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = 64 << 20
	}
	if o.MaxBufferedRecords <= 0 {
		o.MaxBufferedRecords = 100_000
	}
	opts := append(cfg.Opts(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // default, stated: a 202 means in-sync replicas have it
		kgo.MaxBufferedBytes(int(o.MaxBufferedBytes)),
		kgo.MaxBufferedRecords(o.MaxBufferedRecords),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{cl: cl}, nil
}

// Client returns the underlying client (for readiness checks and metrics hooks).
func (p *Producer) Client() *kgo.Client { return p.cl }

// Produce buffers every record and waits until all are acknowledged, or ctx ends. It
// returns nil only if every record was acknowledged. A record that was handed to the
// broker before ctx ended may still be written: callers treat an error as "unknown",
// never as "not written" (ingest answers 503 and the client's retry is deduplicated).
func (p *Producer) Produce(ctx context.Context, recs ...*kgo.Record) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			fail(err)
		}
		wg.Done()
	}
	// kgo fails a whole batch by the context of its first record: a caller's deadline
	// must not fail other callers' records batched with it, so ctx only bounds how long
	// this caller waits. Records outlive a caller that gave up (its retry is
	// deduplicated downstream); memory stays bounded by the buffer limits. No
	// RecordDeliveryTimeout: kgo measures it from the record timestamp, which is the
	// event time here, so old events would fail at once.
	rctx := context.WithoutCancel(ctx)
	for _, r := range recs {
		wg.Add(1)
		p.cl.TryProduce(rctx, r, promise)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("kafka produce: not acknowledged: %w", ctx.Err())
	}
	if first != nil {
		if errors.Is(first, kgo.ErrMaxBuffered) {
			return fmt.Errorf("%w: %w", ErrBufferFull, first)
		}
		return fmt.Errorf("kafka produce: %w", first)
	}
	return nil
}

// Close flushes what is buffered (bounded by ctx) and closes the client.
func (p *Producer) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	return err
}
