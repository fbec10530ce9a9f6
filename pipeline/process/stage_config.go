package process

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/pipeline/kafka"
)

// StageConfig describes one consume -> process -> produce stage.
type StageConfig struct {
	// Name is the stage name: consumer group sluice.<name>, transactional id
	// sluice.<name>.<instance>.
	Name string
	// Inputs are the topics the stage consumes.
	Inputs []string
	// InstanceID makes the transactional id stable across restarts of one instance, so a
	// restarted instance fences the transaction its crashed predecessor left open. It is
	// also the stage's static group membership id (group.instance.id): the restarted
	// instance takes its predecessor's place in the group at once instead of waiting out
	// the session timeout. Unique per running instance of the stage.
	InstanceID string
	// Kafka is how to reach the brokers.
	Kafka kafka.Config
	// NewTask builds the task of one input partition (called on assignment, before its
	// stores are restored).
	NewTask func(TaskID) (Task, error)
	// Changelog names the changelog topic of a store for an input topic.
	Changelog func(input, store string) string
	// TxnTimeout is the producer's transaction timeout. Default 60s.
	TxnTimeout time.Duration
	// MaxRecords bounds the records of one transaction. Default 5000.
	MaxRecords int
	// MaxTime bounds how long one transaction keeps taking already-buffered records.
	// Default 50ms, and never less than CommitInterval.
	MaxTime time.Duration
	// CommitInterval, if > 0, keeps a transaction that has records open for up to this
	// long (real time), taking what arrives meanwhile, as long as records keep arriving
	// at least every CommitLinger; MaxRecords still ends it sooner. Under load that
	// gives fewer, larger transactions, each of which pays its changelog writes (each
	// touched key's whole state), the transaction markers and the offset commit; a quiet
	// stream waits only CommitLinger. The default 0 commits as soon as nothing more is
	// buffered. Outputs do not depend on where transactions end.
	CommitInterval time.Duration
	// CommitLinger is how long, under a CommitInterval, a transaction waits for the next
	// records before it commits. Default CommitInterval/5.
	CommitLinger time.Duration
	// TickInterval, if > 0, makes the stage call Tick on tasks that implement Ticker at
	// least this often, in a transaction of its own when no records arrive.
	TickInterval time.Duration
	// RetryBackoff is the pause after an aborted transaction. Default 100ms.
	RetryBackoff time.Duration
	// EndTimeout bounds ending a transaction (the offset commit, the heartbeat that
	// secures it and EndTxn). kgo's End can wait for good once the group coordinator
	// forgets the member mid-transaction (a coordinator's broker killed): its group loop
	// then waits for AllowRebalance while End waits for a heartbeat. Past the bound the
	// stage drops its session and builds a new one under the same transactional id,
	// which fences the old producer and aborts its transaction. Default: the group
	// session timeout (Kafka.SessionTimeout, else kafka.DefaultSessionTimeout).
	EndTimeout time.Duration
	// Logger for lifecycle and errors. Nil: discard.
	Logger *slog.Logger
	// State says where tasks keep their state stores (on disk under State.Dir, or in
	// memory). Stages without state ignore it.
	State State
	// AfterCommit, if set, runs after a transaction committed in Kafka and before its
	// state writes are applied to the stores. An error there stops the stage as a crash
	// at that point would: the writes never reach the local state, and the next start
	// restores them from the changelog. For tests (the failpoint between the Kafka
	// commit and the local apply).
	AfterCommit func() error
	// Metrics, if set, are updated.
	Metrics *Metrics
	// ClientMetrics, if set, receives the franz-go metrics of the stage's transactional
	// client (sluice_kafka_*{client="<stage>"}). One stage instance per registry.
	ClientMetrics prometheus.Registerer
	// Now is the wall clock. Default time.Now.
	Now func() time.Time
	// AfterFunc runs f after d on the same clock as Now and returns a function that
	// stops it; it wakes the stage when a held partition is due. Default time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
}

// defaults fills in the defaults of unset fields and checks what has none.
func (c *StageConfig) defaults() error {
	if c.TxnTimeout <= 0 {
		c.TxnTimeout = 60 * time.Second
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 5000
	}
	if c.MaxTime <= 0 {
		c.MaxTime = 50 * time.Millisecond
	}
	c.MaxTime = max(c.MaxTime, c.CommitInterval)
	if c.CommitLinger <= 0 || c.CommitLinger > c.CommitInterval {
		c.CommitLinger = c.CommitInterval / 5
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 100 * time.Millisecond
	}
	if c.EndTimeout <= 0 {
		c.EndTimeout = c.Kafka.SessionTimeout
		if c.EndTimeout <= 0 {
			c.EndTimeout = kafka.DefaultSessionTimeout
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AfterFunc == nil {
		c.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.InstanceID == "" {
		return errors.New("stage " + c.Name + ": instance id is required")
	}
	return nil
}
