package dlq

import (
	"context"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxErrorLen bounds the sluice-error header so a dead letter's size stays bounded.
const maxErrorLen = 1024

// Letter describes why and where from a record is dead-lettered.
type Letter struct {
	Stage        string
	Class        Class
	Err          error
	Attempts     int
	FirstFailure time.Time
}

// Record builds the dead letter of rec for topic: the original key, value and headers,
// with the sluice-error* headers replaced (never appended twice) and the origin added.
// The partition is rec's, so dead letters stay in the order of their source partition.
func Record(rec *kgo.Record, topic string, l Letter) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+8)
	for _, h := range rec.Headers {
		if isLetterHeader(h.Key) {
			continue
		}
		hs = append(hs, h)
	}
	msg := "unknown error"
	if l.Err != nil {
		msg = l.Err.Error()
	}
	if len(msg) > maxErrorLen {
		// Cut on a rune boundary so the header stays valid UTF-8.
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	attempts := l.Attempts
	if attempts < 1 {
		attempts = 1
	}
	hs = append(hs,
		kgo.RecordHeader{Key: wire.HeaderClass, Value: []byte(l.Class)},
		kgo.RecordHeader{Key: wire.HeaderError, Value: []byte(msg)},
		kgo.RecordHeader{Key: wire.HeaderStage, Value: []byte(l.Stage)},
		kgo.RecordHeader{Key: wire.HeaderOriginalTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: wire.HeaderOriginalPartition, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)},
		kgo.RecordHeader{Key: wire.HeaderOriginalOffset, Value: strconv.AppendInt(nil, rec.Offset, 10)},
		kgo.RecordHeader{Key: wire.HeaderAttempts, Value: strconv.AppendInt(nil, int64(attempts), 10)},
		kgo.RecordHeader{Key: wire.HeaderFirstFailureTS, Value: strconv.AppendInt(nil, l.FirstFailure.UnixMicro(), 10)},
	)
	return &kgo.Record{
		Topic:     topic,
		Partition: rec.Partition,
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   hs,
		Timestamp: rec.Timestamp,
	}
}

func isLetterHeader(k string) bool {
	switch k {
	case wire.HeaderClass, wire.HeaderError, wire.HeaderStage, wire.HeaderOriginalTopic, wire.HeaderOriginalPartition,
		wire.HeaderOriginalOffset, wire.HeaderAttempts, wire.HeaderFirstFailureTS:
		return true
	}
	return wire.IsFailureHeader(k)
}

// DeadLetterOptions configure DeadLetter.
type DeadLetterOptions struct {
	// Stage names the stage in the sluice-stage header.
	Stage string
	// DLQ names the dead-letter topic of a source topic.
	DLQ func(topic string) string
	// Now is the wall clock of a first failure.
	Now func() time.Time
	// OnLetter, if set, observes each dead letter (metrics, logs).
	OnLetter func(rec *kgo.Record, class Class, err error)
}

// DeadLetter is the middleware that sends the record of a permanent error to the
// dead-letter topic o.DLQ(rec.Topic) through emit, which counts as handled; other errors
// pass through (the stage retries them).
func DeadLetter(o DeadLetterOptions) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error {
			err := next(ctx, rec, emit)
			if err == nil || ClassOf(err) != Permanent {
				return err
			}
			// A replayed record carries its earlier attempts and first failure on.
			first, ok := wire.FirstFailure(rec)
			if !ok {
				first = o.Now()
			}
			emit(Record(rec, o.DLQ(rec.Topic), Letter{Stage: o.Stage, Class: Permanent, Err: err, Attempts: wire.Attempts(rec) + 1, FirstFailure: first}))
			if o.OnLetter != nil {
				o.OnLetter(rec, Permanent, err)
			}
			return nil
		}
	}
}
