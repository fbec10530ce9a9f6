// Package process binds the stream engine to Kafka: stages (consume -> process ->
// produce loops on a GroupTransactSession), their per-partition tasks and the state
// stores those tasks restore from and write to changelog topics, all committed in one
// transaction with the input offsets.
package process

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/stream"
)

// TaskID is the input partition a task owns.
type TaskID struct {
	Topic     string
	Partition int32
}

// Changelogged is a state store whose writes go to a changelog partition inside the
// stage's transaction (stream.Store implements it), kept in memory or on disk with a
// local checkpoint (the changelog offset its committed state reaches).
type Changelogged interface {
	// Name is the store name, part of its changelog topic.
	Name() string
	// Dirty reports pending writes.
	Dirty() bool
	// Changes yields every pending write, nil value for a delete.
	Changes(fn func(key string, value []byte))
	// CommitAt makes pending writes permanent, in one atomic step with checkpoint (the
	// changelog offset after the transaction's last record of the store, or
	// stream.NoCheckpoint to keep the last one) after the transaction committed; Abort
	// drops them.
	CommitAt(checkpoint int64) error
	Abort()
	// Restore applies one changelog record.
	Restore(key string, value []byte) error
	// Len is the committed size.
	Len() int
	// Checkpoint is the changelog offset the committed state reaches; ok is false when
	// unknown (always in memory, and on disk before the first checkpoint).
	Checkpoint() (offset int64, ok bool)
	// CheckpointTime is when the checkpoint last moved; ok is false when unknown.
	CheckpointTime() (time.Time, bool)
	// Wipe drops the committed state and checkpoint before a full restore.
	Wipe() error
	// Durable reports whether the state and checkpoint outlive the process.
	Durable() bool
	// Discarded is why a store on disk dropped the state it found when it opened.
	Discarded() error
	// Err is the first error of the store's disk (nil in memory): after one the task
	// must not commit.
	Err() error
	// Close releases the store's files and directory lock.
	Close() error
}

var _ Changelogged = (*stream.Store[int64])(nil)

// Task processes the records of one input partition and owns that partition's state.
type Task interface {
	// Handle processes one record, emitting outputs. It never commits.
	Handle(ctx context.Context, rec *kgo.Record, emit func(*kgo.Record)) error
	// Stores are restored on assignment and changelogged on every transaction.
	Stores() []Changelogged
	// Done is told whether the transaction carrying the task's latest records committed.
	Done(committed bool)
}

// Ticker is a task that acts on the wall clock (idle advance): Tick runs in every
// transaction and, when the stage's TickInterval passes without records, in one of its own.
type Ticker interface {
	Tick(ctx context.Context, now time.Time, emit func(*kgo.Record)) error
}

// ProgressTracker is told, after each batch of its partition, how many records remain
// behind the high watermark (0: caught up).
type ProgressTracker interface {
	Progress(lag int64)
}

// Restorer is told when its stores have been restored, to rebuild indexes over them.
type Restorer interface {
	Restored()
}
