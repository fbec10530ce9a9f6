package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/stagekit"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Stage runs one StageConfig. Exactly-once: outputs, changelog records and input offsets
// commit in one Kafka transaction; a task's state changes become permanent only when
// that transaction committed.
type Stage struct {
	cfg  StageConfig
	sess *kgo.GroupTransactSession
	// opts are the session's client options without its callbacks: a rebuilt session
	// uses them again.
	opts []kgo.Opt
	// gen counts sessions (under mu): the callbacks of a replaced session do nothing.
	gen int
	// broken is set by a batch whose transaction did not end cleanly, or a task that
	// could not start: Run replaces the session before the next poll.
	broken error
	// startFailures counts task starts (restores) that failed since the last committed
	// transaction; past maxStartRetries the next one stops the stage.
	startFailures int
	adm           *kadm.Client
	// admCl is adm's client: it leaves the group for the closed session.
	admCl *kgo.Client
	log   *slog.Logger

	mu    sync.Mutex
	tasks map[TaskID]Task
	// retired are revoked tasks whose stores the polling goroutine closes at its next
	// safe point (no batch running), or startTask before the same task opens them again.
	retired map[TaskID]Task
	// storesClosed is set once Run closed every store: nothing opens stores after it.
	storesClosed bool
	fatal        error
	// holds are the paused partitions; only the polling goroutine and the revoke
	// callback (which runs while that goroutine allows rebalances) touch them, under mu.
	holds map[TaskID]*hold

	closeOnce sync.Once
	started   atomic.Bool
	// crash kills the stage (tests); batches run under its context, so shutdown drains
	// a polled batch while Kill stops it.
	crash *stagekit.Crash
}

// errStageClosed is startTask's error once Run has closed every store.
var errStageClosed = errors.New("stage closed")

// errStaleSession is startTask's error for an assignment of a replaced session.
var errStaleSession = errors.New("session replaced")

// NewStage connects a stage's clients. It checks the transaction timeout against the
// brokers' limit and fails with a clear message if it is larger.
func NewStage(ctx context.Context, cfg StageConfig) (*Stage, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	cfg.Kafka.InstanceID = cfg.InstanceID
	s := &Stage{cfg: cfg, tasks: make(map[TaskID]Task), retired: make(map[TaskID]Task), holds: make(map[TaskID]*hold), log: cfg.Logger.With("stage", cfg.Name),
		crash: stagekit.NewCrash(cfg.Kafka.Dial)}
	cfg.Kafka.Dial = s.crash.Dial

	admCl, err := kgo.NewClient(cfg.Kafka.Opts()...)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", cfg.Name, err)
	}
	s.adm, s.admCl = kadm.NewClient(admCl), admCl
	if err := kafka.CheckTxnTimeout(ctx, s.adm, cfg.TxnTimeout); err != nil {
		s.adm.Close()
		return nil, fmt.Errorf("stage %s: %w", cfg.Name, err)
	}

	s.opts = append(append(cfg.Kafka.Opts(), cfg.Kafka.GroupOpts()...),
		kgo.ConsumerGroup(s.group()),
		kgo.ConsumeTopics(cfg.Inputs...),
		kgo.TransactionalID(wire.TransactionalID(cfg.Name, cfg.InstanceID)),
		kgo.TransactionTimeout(cfg.TxnTimeout),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A partition resumed after a hold joins the next fetch request only: a short
		// long-poll bounds how late a due retry or a probe starts (new data still
		// returns a fetch at once).
		kgo.FetchMaxWait(500*time.Millisecond),
		// Rebalances happen between transactions only, so task state never changes
		// under a running batch.
		kgo.BlockRebalanceOnPoll(),
		// Outputs go to the input's partition number: derived topics have the input's
		// partition count, so keys stay co-partitioned and changelog N belongs to task N.
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)
	sess, err := s.newSession(ctx, 0, true)
	if err != nil {
		s.adm.Close()
		return nil, fmt.Errorf("stage %s: %w", cfg.Name, err)
	}
	s.sess = sess
	s.cfg.Metrics.txnClosed(s) // the gauge reads 0 until the first transaction
	return s, nil
}

// Run processes until ctx ends, then ends the open transaction, leaves the group and
// closes the clients. It returns nil after a clean shutdown.
func (s *Stage) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.crash.Context(), cancel)
	defer stop()
	s.started.Store(true)
	defer func() {
		// No batch runs any more: the stores can close (and release their directories)
		// before the group hears of it, as a process exiting would.
		s.closeAllStores()
		if s.crash.Killed() {
			// Closing would try to leave the group through severed connections: let it
			// give up in the background, as the dead process it stands for would.
			go s.close()
		} else {
			s.close()
		}
	}()
	lastTick := s.cfg.Now()
	for {
		s.mu.Lock()
		broken := s.broken
		s.mu.Unlock()
		if broken != nil {
			if err := s.rebuild(ctx, broken); err != nil {
				if s.crash.Killed() {
					return stagekit.ErrKilled
				}
				return nil // shut down while replacing the session: nothing is open
			}
		}
		s.closeRetired()
		wake, held := s.resumeDue()
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if s.hasTickers() {
			// Wake up to tick even when nothing arrives.
			pctx, cancel = context.WithTimeout(ctx, s.cfg.TickInterval)
		}
		if held {
			// Wake up when the earliest held partition is due, on the stage's clock.
			var cancelPoll context.CancelFunc
			pctx, cancelPoll = context.WithCancel(pctx)
			stop := s.cfg.AfterFunc(wake.Sub(s.cfg.Now()), cancelPoll)
			prev := cancel
			cancel = func() { stop(); cancelPoll(); prev() }
		}
		fs := s.sess.PollRecords(pctx, s.cfg.MaxRecords)
		cancel()
		if s.crash.Killed() || fs.IsClientClosed() {
			return stagekit.ErrKilled
		}
		if ctx.Err() != nil {
			return nil
		}
		stagekit.LogFetchErrors(s.log, fs)
		if fs.NumRecords() == 0 {
			if s.hasTickers() && s.cfg.Now().Sub(lastTick) >= s.cfg.TickInterval {
				// Nothing arrived: a transaction of ticks alone (idle advance).
				if err := s.batch(s.crash.Context(), fs); err != nil {
					return err
				}
				lastTick = s.cfg.Now()
			}
			s.sess.AllowRebalance()
			continue
		}
		// A batch already polled finishes even when ctx ends: shutdown drains.
		if err := s.batch(s.crash.Context(), fs); err != nil {
			return err
		}
		if s.crash.Killed() {
			return stagekit.ErrKilled
		}
		lastTick = s.cfg.Now()
		s.sess.AllowRebalance()
	}
}

// Kill makes the stage die as a crashed process would: every broker connection is cut
// at once, so its open transaction is neither committed nor aborted (the next instance
// with the same transactional id fences it, or it times out) and it never leaves its
// group (its partitions move after the session timeout). Run returns stagekit.ErrKilled.
// For tests.
// Killing a stage that never ran releases its clients.
func (s *Stage) Kill() {
	s.crash.Kill(func() {
		if !s.started.Load() {
			go s.close()
		}
	})
}

func (s *Stage) close() {
	s.closeOnce.Do(func() {
		if s.sess == nil {
			// Run ended while it replaced the session: the old one is closed already.
			s.adm.Close()
			return
		}
		member, _ := s.sess.Client().GroupMetadata()
		s.sess.CloseAllowingRebalance()
		if !s.crash.Killed() {
			stagekit.LeaveGroup(s.cfg.Kafka, s.admCl, s.group(), member, s.log)
		}
		s.adm.Close()
	})
}

// group is the stage's consumer group.
func (s *Stage) group() string { return wire.GroupID(s.cfg.Name) }
