// Package process binds the stream engine to Kafka: stages (consume -> process ->
// produce loops on a GroupTransactSession), their per-partition tasks and the state
// stores those tasks restore from and write to changelog topics, all committed in one
// transaction with the input offsets.
package process

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TaskID is the input partition a task owns.
type TaskID struct {
	Topic     string
	Partition int32
}

// Changelogged is a state store whose writes go to a changelog partition inside the
// stage's transaction (stream.Store implements it).
type Changelogged interface {
	// Name is the store name, part of its changelog topic.
	Name() string
	// Dirty reports pending writes.
	Dirty() bool
	// Changes yields every pending write, nil value for a delete.
	Changes(fn func(key string, value []byte))
	// Commit makes pending writes permanent; Abort drops them.
	Commit()
	Abort()
	// Restore applies one changelog record.
	Restore(key string, value []byte) error
	// Len is the committed size.
	Len() int
}

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
