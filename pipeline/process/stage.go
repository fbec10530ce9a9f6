package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/stream"
	"github.com/sluicehq/sluice/pipeline/wire"
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

// hold is a partition paused on a record that asked to wait (dlq.WaitError): the stage
// rewinds the partition to that record and resumes it at until.
type hold struct {
	offset int64
	epoch  int32
	until  time.Time
	// fresh holds were set in the open transaction: their offsets are set before it ends.
	fresh bool
}

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
	dialer    *kafka.SeverableDialer
	// killCtx ends only when the stage is killed: batches run under it, so shutdown
	// drains a polled batch while Kill stops it.
	killCtx  context.Context
	kill     context.CancelFunc
	killOnce sync.Once
}

// errStageClosed is startTask's error once Run has closed every store.
var errStageClosed = errors.New("stage closed")

// errStaleSession is startTask's error for an assignment of a replaced session.
var errStaleSession = errors.New("session replaced")

// ErrStageKilled is returned by Run after Kill.
var ErrStageKilled = errors.New("stage killed")

// NewStage connects a stage's clients. It checks the transaction timeout against the
// brokers' limit and fails with a clear message if it is larger.
func NewStage(ctx context.Context, cfg StageConfig) (*Stage, error) {
	if cfg.TxnTimeout <= 0 {
		cfg.TxnTimeout = 60 * time.Second
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 5000
	}
	if cfg.MaxTime <= 0 {
		cfg.MaxTime = 50 * time.Millisecond
	}
	cfg.MaxTime = max(cfg.MaxTime, cfg.CommitInterval)
	if cfg.CommitLinger <= 0 || cfg.CommitLinger > cfg.CommitInterval {
		cfg.CommitLinger = cfg.CommitInterval / 5
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	if cfg.EndTimeout <= 0 {
		cfg.EndTimeout = cfg.Kafka.SessionTimeout
		if cfg.EndTimeout <= 0 {
			cfg.EndTimeout = kafka.DefaultSessionTimeout
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.InstanceID == "" {
		return nil, errors.New("stage " + cfg.Name + ": instance id is required")
	}
	cfg.Kafka.InstanceID = cfg.InstanceID
	s := &Stage{cfg: cfg, tasks: make(map[TaskID]Task), retired: make(map[TaskID]Task), holds: make(map[TaskID]*hold), log: cfg.Logger.With("stage", cfg.Name),
		dialer: kafka.NewSeverableDialer(nil)}
	s.killCtx, s.kill = context.WithCancel(context.Background())
	// TLS runs over this dialer, so severing it also cuts TLS connections.
	cfg.Kafka.Dial = s.dialer.DialContext

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

// newSession builds the session of generation gen and initialises its transactional
// producer: InitProducerId fences a crashed predecessor (or the session this one
// replaces) with the same transactional id and aborts the transaction it left open.
// Until then that transaction's pending offsets keep the group's offsets unstable, so
// waiting for the first batch to do it would wait out its timeout. withMetrics
// registers the client's metrics (at most one live client of the stage may).
func (s *Stage) newSession(ctx context.Context, gen int, withMetrics bool) (*kgo.GroupTransactSession, error) {
	opts := append(slices.Clip(s.opts),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, as map[string][]int32) {
			s.assigned(ctx, cl, as, gen)
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, rs map[string][]int32) {
			s.revoked(ctx, cl, rs, gen)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, rs map[string][]int32) {
			s.revoked(ctx, cl, rs, gen)
		}),
	)
	if withMetrics {
		opts = append(opts, kafka.ClientMetrics(s.cfg.ClientMetrics, s.cfg.Name)...)
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, err
	}
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		sess.Client().CloseAllowingRebalance()
		return nil, fmt.Errorf("init transactional producer: %w", err)
	}
	return sess, nil
}

// sessionCloseWait bounds how long a rebuild waits for the replaced session's client
// to close (its group loop ends, its metrics unregister) before it builds the new one.
const sessionCloseWait = 10 * time.Second

// rebuild replaces a session whose transaction could not end (cause) with a new one
// under the same transactional id. The new producer's InitProducerId fences the old one
// and aborts whatever transaction it left open, so nothing the old session produced is
// committed after this, and its offsets never move. Every task is dropped: the new
// session's assignment restores them from their changelogs (the committed truth) and
// consumes from the committed offsets. It returns only once a session is up, or with
// ctx's end.
func (s *Stage) rebuild(ctx context.Context, cause error) error {
	s.log.Warn("transaction did not end; replacing the Kafka session (same transactional id: the old producer is fenced)",
		"err", cause)
	s.mu.Lock()
	s.gen++
	gen := s.gen
	for id, t := range s.tasks {
		s.retired[id] = t
	}
	clear(s.tasks)
	clear(s.holds)
	s.broken = nil
	s.mu.Unlock()

	if n := s.startFailuresNow(); n > 0 {
		// A task that could not start: give the brokers time before trying again.
		b := time.NewTimer(min(s.cfg.RetryBackoff<<min(n, 6), 5*time.Second))
		select {
		case <-ctx.Done():
			b.Stop()
		case <-b.C:
		}
	}
	old := s.sess
	closed := make(chan struct{})
	go func() {
		// Its group loop, blocked on AllowRebalance, reports the loss (to callbacks of an
		// old generation, which do nothing) and ends.
		old.CloseAllowingRebalance()
		close(closed)
	}()
	withMetrics := true
	t := time.NewTimer(sessionCloseWait)
	select {
	case <-closed:
		t.Stop()
	case <-t.C:
		// Its metrics stay registered until it closes: the new client goes without.
		withMetrics = s.cfg.ClientMetrics == nil
		s.log.Warn("the replaced Kafka session did not close in time; the new one runs without client metrics",
			"waited", sessionCloseWait)
	case <-ctx.Done():
		s.sess = nil
		return ctx.Err()
	}
	s.closeRetired()
	for attempt := 1; ; attempt++ {
		ictx, cancel := context.WithTimeout(ctx, s.cfg.TxnTimeout)
		sess, err := s.newSession(ictx, gen, withMetrics)
		cancel()
		if err == nil {
			s.sess = sess
			s.log.Info("Kafka session replaced", "attempts", attempt)
			s.cfg.Metrics.sessionReplaced(s.cfg.Name)
			return nil
		}
		if ctx.Err() != nil {
			s.sess = nil
			return ctx.Err()
		}
		s.log.Warn("replacing the Kafka session failed; retrying", "attempt", attempt, "err", err)
		b := time.NewTimer(min(s.cfg.RetryBackoff*time.Duration(1<<min(attempt, 6)), 10*time.Second))
		select {
		case <-ctx.Done():
			b.Stop()
			s.sess = nil
			return ctx.Err()
		case <-b.C:
		}
	}
}

func (s *Stage) startFailuresNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startFailures
}

// stale reports whether gen is a replaced session's generation.
func (s *Stage) stale(gen int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return gen != s.gen
}

func (s *Stage) assigned(ctx context.Context, _ *kgo.Client, as map[string][]int32, gen int) {
	if s.stale(gen) {
		return
	}
	for topic, ps := range as {
		for _, p := range ps {
			id := TaskID{topic, p}
			if err := s.startTask(ctx, id, gen); errors.Is(err, errStageClosed) || errors.Is(err, errStaleSession) {
				// An assignment while Run ends (its client leaving the group): nothing to do.
				continue
			} else if err != nil {
				if s.startFailed(err) {
					s.log.Warn("task start failed; the Kafka session is replaced to try again", "topic", topic, "partition", p, "err", err)
					continue
				}
				s.mu.Lock()
				s.fatal = errors.Join(s.fatal, err)
				s.mu.Unlock()
				s.log.Error("task start failed", "topic", topic, "partition", p, "err", err)
			}
		}
	}
}

func (s *Stage) startTask(ctx context.Context, id TaskID, gen int) error {
	// A task revoked and assigned again (or rebuilt) closes its stores before the new
	// one opens the same directories.
	s.mu.Lock()
	old, ok := s.retired[id]
	delete(s.retired, id)
	closed := s.storesClosed
	s.mu.Unlock()
	if ok {
		closeStores(old.Stores(), s.log)
	}
	if closed {
		return fmt.Errorf("task %s/%d: %w", id.Topic, id.Partition, errStageClosed)
	}
	t, err := s.cfg.NewTask(id)
	if err != nil {
		return fmt.Errorf("task %s/%d: %w", id.Topic, id.Partition, err)
	}
	start := s.cfg.Now()
	n := 0
	for _, st := range t.Stores() {
		topic := s.cfg.Changelog(id.Topic, st.Name())
		k, tail, err := restoreFrom(ctx, s.cfg.Kafka, topic, id.Partition, st, s.cfg.Now(), s.log)
		n += k
		s.cfg.Metrics.restoredStore(s.cfg.Name, tail, k)
		if err != nil {
			closeStores(t.Stores(), s.log)
			return fmt.Errorf("task %s/%d: %w", id.Topic, id.Partition, err)
		}
	}
	if r, ok := t.(Restorer); ok {
		r.Restored()
	}
	for _, st := range t.Stores() {
		if err := st.Err(); err != nil {
			closeStores(t.Stores(), s.log)
			return fmt.Errorf("task %s/%d: store %s: %w", id.Topic, id.Partition, st.Name(), err)
		}
		s.cfg.Metrics.storeState(s.cfg.Name, id, st)
	}
	took := s.cfg.Now().Sub(start)
	s.cfg.Metrics.restoredTask(s.cfg.Name, took, n)
	s.mu.Lock()
	if s.storesClosed {
		// Run ended while this assignment restored: nothing would close these stores.
		s.mu.Unlock()
		closeStores(t.Stores(), s.log)
		return fmt.Errorf("task %s/%d: %w", id.Topic, id.Partition, errStageClosed)
	}
	if s.gen != gen {
		// The session was replaced while this assignment restored.
		s.mu.Unlock()
		closeStores(t.Stores(), s.log)
		return fmt.Errorf("task %s/%d: %w", id.Topic, id.Partition, errStaleSession)
	}
	s.tasks[id] = t
	s.mu.Unlock()
	s.log.Info("task started", "topic", id.Topic, "partition", id.Partition, "restored", n, "took", took)
	return nil
}

// closeRetired closes the stores of revoked tasks. The polling goroutine calls it
// between batches.
func (s *Stage) closeRetired() {
	s.mu.Lock()
	if len(s.retired) == 0 {
		s.mu.Unlock()
		return
	}
	ts := s.retired
	s.retired = make(map[TaskID]Task)
	s.mu.Unlock()
	for _, t := range ts {
		closeStores(t.Stores(), s.log)
	}
}

// closeAllStores closes the stores of every task, owned or retired, once no batch runs
// any more (Run's end): their directories are free for the next instance at once.
func (s *Stage) closeAllStores() {
	s.mu.Lock()
	ts := make([]Task, 0, len(s.tasks)+len(s.retired))
	for _, t := range s.tasks {
		ts = append(ts, t)
	}
	for _, t := range s.retired {
		ts = append(ts, t)
	}
	clear(s.retired)
	s.storesClosed = true
	s.mu.Unlock()
	for _, t := range ts {
		closeStores(t.Stores(), s.log)
	}
}

func (s *Stage) revoked(_ context.Context, cl *kgo.Client, rs map[string][]int32, gen int) {
	s.mu.Lock()
	if s.gen != gen {
		// A replaced session: rebuild already retired its tasks.
		s.mu.Unlock()
		return
	}
	resume := make(map[string][]int32)
	for topic, ps := range rs {
		for _, p := range ps {
			// Only forget the task: a batch still running (a client closing mid-batch
			// revokes without waiting) holds its own reference, aborts its
			// transaction and drops the pending state itself.
			id := TaskID{topic, p}
			if t, ok := s.tasks[id]; ok {
				s.retired[id] = t
			}
			delete(s.tasks, id)
			if _, ok := s.holds[id]; ok {
				delete(s.holds, id)
				resume[topic] = append(resume[topic], p)
			}
		}
	}
	s.mu.Unlock()
	// A paused partition stays paused across assignments: unpause it now, or it would
	// stall if it came back to this instance.
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
	}
}

func (s *Stage) task(id TaskID) (Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fatal != nil {
		return nil, s.fatal
	}
	t, ok := s.tasks[id]
	if !ok {
		return nil, fmt.Errorf("no task for %s/%d", id.Topic, id.Partition)
	}
	return t, nil
}

// Run processes until ctx ends, then ends the open transaction, leaves the group and
// closes the clients. It returns nil after a clean shutdown.
func (s *Stage) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.killCtx.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		// No batch runs any more: the stores can close (and release their directories)
		// before the group hears of it, as a process exiting would.
		s.closeAllStores()
		select {
		case <-s.killCtx.Done():
			// Closing would try to leave the group through severed connections: let it
			// give up in the background, as the dead process it stands for would.
			go s.close()
		default:
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
				if s.isKilled() {
					return ErrStageKilled
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
		if s.isKilled() {
			return ErrStageKilled
		}
		if fs.IsClientClosed() {
			return ErrStageKilled
		}
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if fs.NumRecords() == 0 {
			if s.hasTickers() && s.cfg.Now().Sub(lastTick) >= s.cfg.TickInterval {
				// Nothing arrived: a transaction of ticks alone (idle advance).
				if err := s.batch(s.killCtx, fs); err != nil {
					return err
				}
				lastTick = s.cfg.Now()
			}
			s.sess.AllowRebalance()
			continue
		}
		// A batch already polled finishes even when ctx ends: shutdown drains.
		if err := s.batch(s.killCtx, fs); err != nil {
			return err
		}
		if s.isKilled() {
			return ErrStageKilled
		}
		lastTick = s.cfg.Now()
		s.sess.AllowRebalance()
	}
}

func (s *Stage) hasTickers() bool { return s.cfg.TickInterval > 0 }

// batch runs one transaction: the records of fs, then whatever more is already buffered,
// until MaxRecords or MaxTime; then ticks, changelog records, flush and commit.
func (s *Stage) batch(ctx context.Context, fs kgo.Fetches) error {
	start := s.cfg.Now()
	s.cfg.Metrics.txnOpen(s, start)
	defer s.cfg.Metrics.txnClosed(s)
	if err := s.sess.Begin(); err != nil {
		// The producer is in a failed state (fenced, or a transaction it could not end):
		// only a new session recovers. The polled records are consumed again by it.
		s.markBroken(fmt.Errorf("begin: %w", err))
		return nil
	}
	var (
		mu      sync.Mutex
		prodErr error
		// ends is, per store written in this transaction, the offset after its last
		// changelog record (from the produce acks): its checkpoint once committed.
		ends = make(map[Changelogged]int64)
	)
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			prodErr = errors.Join(prodErr, fmt.Errorf("produce %s/%d: %w", r.Topic, r.Partition, err))
			mu.Unlock()
		}
	}
	// The output counters of this transaction by topic: a label lookup per record cost
	// as much as producing it. emit runs on this goroutine only.
	outs := make(map[string]prometheus.Counter, 4)
	emitWith := func(r *kgo.Record, promise func(*kgo.Record, error)) {
		if s.cfg.Metrics != nil {
			c, ok := outs[r.Topic]
			if !ok {
				c = s.cfg.Metrics.outCounter(s.cfg.Name, r.Topic)
				outs[r.Topic] = c
			}
			c.Inc()
		}
		s.sess.Produce(ctx, r, promise)
	}
	emit := func(r *kgo.Record) { emitWith(r, promise) }
	touched := make(map[TaskID]Task)
	n := 0
	handleErr := s.handle(ctx, fs, touched, emit)
	n += fs.NumRecords()
	// A nil context returns at once with what is already buffered: batching under load,
	// no added latency when idle. Under a CommitInterval each poll waits up to
	// CommitLinger for more, until the interval has passed (real-time timers: the
	// interval is a cost knob, and a test's fake clock must not hold a transaction open).
	realStart := time.Now()
	for handleErr == nil && n < s.cfg.MaxRecords && s.cfg.Now().Sub(start) < s.cfg.MaxTime {
		more := s.pollMore(ctx, realStart, s.cfg.MaxRecords-n)
		if more.NumRecords() == 0 {
			break
		}
		n += more.NumRecords()
		handleErr = s.handle(ctx, more, touched, emit)
	}
	if handleErr == nil {
		handleErr = s.tick(ctx, touched, emit)
	}
	if handleErr == nil {
		// A store whose disk failed may have missed committed keys: nothing it decided
		// may commit.
		handleErr = storeErrors(touched)
	}
	if handleErr == nil {
		for id, t := range touched {
			for _, st := range t.Stores() {
				if !st.Dirty() {
					continue
				}
				topic := s.cfg.Changelog(id.Topic, st.Name())
				acked := func(r *kgo.Record, err error) {
					promise(r, err)
					if err == nil {
						mu.Lock()
						ends[st] = max(ends[st], r.Offset+1)
						mu.Unlock()
					}
				}
				st.Changes(func(k string, v []byte) {
					emitWith(&kgo.Record{Topic: topic, Partition: id.Partition, Key: []byte(k), Value: v}, acked)
				})
			}
		}
	}
	// Flush before ending: without it every transaction waits out the producer linger.
	// Past the transaction timeout the brokers abort it anyway: stop waiting then.
	fctx, cancelFlush := context.WithTimeout(ctx, s.cfg.TxnTimeout)
	flushErr := s.sess.Client().Flush(fctx)
	cancelFlush()
	if handleErr == nil && flushErr == nil {
		// Held partitions commit the offset of the record they wait on, not of the
		// records polled after it.
		s.rewindHolds()
	}
	mu.Lock()
	perr := prodErr
	mu.Unlock()
	ok := handleErr == nil && flushErr == nil && perr == nil
	// End is bounded (EndTimeout): unbounded, it can wait for a heartbeat that the
	// group loop, itself waiting for AllowRebalance, never sends. Any error leaves the
	// producer in a state kgo does not promise to recover from: the session is replaced
	// before the next poll (rebuild), which fences this producer, so the transaction is
	// not committed later behind our back, and its offsets stay where they were.
	ectx, cancelEnd := context.WithTimeout(ctx, s.cfg.EndTimeout)
	committed, endErr := s.sess.End(ectx, kgo.TransactionEndTry(ok))
	timedOut := ectx.Err() != nil && ctx.Err() == nil
	cancelEnd()
	if endErr != nil && !committed {
		if timedOut {
			endErr = fmt.Errorf("transaction did not end within %s: %w", s.cfg.EndTimeout, endErr)
		}
		s.markBroken(endErr)
	}
	if committed && s.cfg.AfterCommit != nil {
		if err := s.cfg.AfterCommit(); err != nil {
			s.Kill()
			return fmt.Errorf("stage %s: after commit: %w: %w", s.cfg.Name, ErrStageKilled, err)
		}
	}
	// The transaction's state writes reach the stores only now that it committed: each
	// store applies them in one batch with its checkpoint (on disk, the changelog offset
	// they reach), so a restart reads only the changelog after it. Aborted writes are
	// dropped.
	var applyErr error
	mu.Lock()
	for _, t := range touched {
		for _, st := range t.Stores() {
			if !committed {
				st.Abort()
				continue
			}
			cp, ok := ends[st]
			if !ok {
				cp = stream.NoCheckpoint // nothing written: the checkpoint stands
			}
			if err := st.CommitAt(cp); err != nil {
				applyErr = errors.Join(applyErr, fmt.Errorf("store %s: %w", st.Name(), err))
			}
		}
		t.Done(committed)
	}
	mu.Unlock()
	s.cfg.Metrics.txn(s.cfg.Name, committed, s.cfg.Now().Sub(start))
	s.settleHolds(committed)
	if applyErr != nil {
		// Kafka has the transaction; the local state does not. Stop: the next start
		// restores the stores from their changelogs (their checkpoints are older).
		return fmt.Errorf("stage %s: applying committed state: %w", s.cfg.Name, applyErr)
	}
	if committed {
		s.mu.Lock()
		s.startFailures = 0
		s.mu.Unlock()
		return nil
	}
	s.log.Warn("transaction aborted; retrying from the last commit",
		"records", n, "err", errors.Join(handleErr, flushErr, perr, endErr))
	s.mu.Lock()
	fatal := s.fatal
	s.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	if err := storeErrors(touched); err != nil {
		return fmt.Errorf("stage %s: %w", s.cfg.Name, err)
	}
	if s.isBroken() {
		// The new session restores every task from its changelog.
		return nil
	}
	// Tasks may keep state outside their stores' pending layers (windows mutate in
	// place): rebuild every touched task from its changelog, the committed truth.
	for id := range touched {
		if err := s.rebuildTask(ctx, id); err != nil {
			if s.startFailed(err) {
				s.log.Warn("task rebuild failed; the Kafka session is replaced to try again", "topic", id.Topic, "partition", id.Partition, "err", err)
				return nil
			}
			return err
		}
	}
	t := time.NewTimer(s.cfg.RetryBackoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}

// noWait is the nil context that makes PollRecords return only what is buffered.
var noWait context.Context

// pollMore polls the records a transaction begun at realStart takes next: what is
// buffered, or under a CommitInterval what arrives within CommitLinger while the
// interval lasts. None means the transaction ends.
func (s *Stage) pollMore(ctx context.Context, realStart time.Time, max int) kgo.Fetches {
	if s.cfg.CommitInterval <= 0 {
		return s.sess.PollRecords(noWait, max)
	}
	left := s.cfg.CommitInterval - time.Since(realStart)
	if left <= 0 {
		return s.sess.PollRecords(noWait, max)
	}
	wctx, cancel := context.WithTimeout(ctx, min(left, s.cfg.CommitLinger))
	defer cancel()
	return s.sess.PollRecords(wctx, max)
}

// handle runs every record of fs through its task.
func (s *Stage) handle(ctx context.Context, fs kgo.Fetches, touched map[TaskID]Task, emit func(*kgo.Record)) error {
	var handleErr error
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if handleErr != nil || len(p.Records) == 0 {
			return
		}
		id := TaskID{p.Topic, p.Partition}
		t, err := s.task(id)
		if err != nil {
			handleErr = err
			return
		}
		if s.isHeld(id) {
			// Records polled after a held one: not handled now, not committed.
			return
		}
		touched[id] = t
		for i, rec := range p.Records {
			err := t.Handle(ctx, rec, emit)
			if err == nil {
				continue
			}
			if w, ok := dlq.AsWait(err); ok && ctx.Err() == nil {
				s.hold(id, rec, w)
				s.cfg.Metrics.in(s.cfg.Name, p.Topic, i)
				return
			}
			handleErr = fmt.Errorf("%s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			return
		}
		if pt, ok := t.(ProgressTracker); ok {
			last := p.Records[len(p.Records)-1].Offset
			pt.Progress(p.HighWatermark - (last + 1))
		}
		s.cfg.Metrics.in(s.cfg.Name, p.Topic, len(p.Records))
	})
	return handleErr
}

// tick gives every task that implements Ticker the clock; a task that emits joins the
// transaction.
func (s *Stage) tick(ctx context.Context, touched map[TaskID]Task, emit func(*kgo.Record)) error {
	s.mu.Lock()
	tasks := make(map[TaskID]Task, len(s.tasks))
	for id, t := range s.tasks {
		tasks[id] = t
	}
	s.mu.Unlock()
	now := s.cfg.Now()
	for id, t := range tasks {
		tk, ok := t.(Ticker)
		if !ok {
			continue
		}
		emitted := false
		err := tk.Tick(ctx, now, func(r *kgo.Record) { emitted = true; emit(r) })
		if err != nil {
			return fmt.Errorf("tick %s/%d: %w", id.Topic, id.Partition, err)
		}
		if emitted || t.Stores() != nil {
			touched[id] = t
		}
	}
	return nil
}

// rebuildTask replaces a task with a fresh one restored from its changelogs.
func (s *Stage) rebuildTask(ctx context.Context, id TaskID) error {
	s.mu.Lock()
	gen := s.gen
	old, owned := s.tasks[id]
	if owned {
		// startTask closes its stores before the new task opens them.
		delete(s.tasks, id)
		s.retired[id] = old
	}
	s.mu.Unlock()
	if !owned {
		return nil // revoked meanwhile
	}
	return s.startTask(ctx, id, gen)
}

// maxStartRetries is how many task starts may fail in a row (between committed
// transactions) before the stage stops: a restore fails while a broker is down (a
// partition without a leader, a coordinator moving) and succeeds once it is back.
const maxStartRetries = 8

// startFailed counts a failed task start; while retries remain it marks the session
// broken (Run replaces it, and the new assignment starts the task again) and returns true.
func (s *Stage) startFailed(err error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startFailures++
	if s.startFailures > maxStartRetries {
		return false
	}
	s.broken = errors.Join(s.broken, fmt.Errorf("task start: %w", err))
	return true
}

// markBroken makes Run replace the session before its next poll.
func (s *Stage) markBroken(err error) {
	s.mu.Lock()
	s.broken = errors.Join(s.broken, err)
	s.mu.Unlock()
}

func (s *Stage) isBroken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken != nil
}

// storeErrors joins the disk errors of the stores of tasks.
func storeErrors(tasks map[TaskID]Task) error {
	var errs error
	for id, t := range tasks {
		for _, st := range t.Stores() {
			if err := st.Err(); err != nil {
				errs = errors.Join(errs, fmt.Errorf("state %s of %s/%d: %w", st.Name(), id.Topic, id.Partition, err))
			}
		}
	}
	return errs
}

// Lag returns how far group's committed offset (group "": offset next) is behind the
// high watermark of topic/partition.
func (s *Stage) Lag(ctx context.Context, group, topic string, partition int32, next int64) (int64, error) {
	offs, err := s.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	o, ok := offs.Lookup(topic, partition)
	if !ok {
		return 0, fmt.Errorf("end offset %s/%d: partition not found", topic, partition)
	}
	if o.Err != nil {
		return 0, o.Err
	}
	if group != "" {
		committed, err := s.adm.FetchOffsets(ctx, group)
		if err != nil {
			return 0, err
		}
		c, ok := committed.Lookup(topic, partition)
		next = 0
		if ok && c.Err == nil {
			next = c.At
		}
	}
	return o.Offset - next, nil
}

// Kill makes the stage die as a crashed process would: every broker connection is cut
// at once, so its open transaction is neither committed nor aborted (the next instance
// with the same transactional id fences it, or it times out) and it never leaves its
// group (its partitions move after the session timeout). Run returns ErrStageKilled.
// For tests.
func (s *Stage) Kill() {
	s.killOnce.Do(func() {
		s.dialer.Sever()
		s.kill()
	})
}

func (s *Stage) isKilled() bool {
	return s.killCtx.Err() != nil
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
		if !s.isKilled() {
			// A static member does not leave on close: leave now, so the partitions move
			// to the other instances at once rather than after the session timeout.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.cfg.Kafka.LeaveStatic(ctx, s.admCl, s.group(), member); err != nil {
				s.log.Warn("leaving the group failed; its partitions move after the session timeout", "err", err)
			}
			cancel()
		}
		s.adm.Close()
	})
}

// group is the stage's consumer group.
func (s *Stage) group() string { return wire.GroupID(s.cfg.Name) }

// hold pauses id on rec until w.Until. Called by the polling goroutine inside a batch.
func (s *Stage) hold(id TaskID, rec *kgo.Record, w *dlq.WaitError) {
	s.mu.Lock()
	s.holds[id] = &hold{offset: rec.Offset, epoch: rec.LeaderEpoch, until: w.Until, fresh: true}
	s.mu.Unlock()
	s.sess.Client().PauseFetchPartitions(map[string][]int32{id.Topic: {id.Partition}})
	s.cfg.Metrics.held(s.cfg.Name, w.Reason)
	s.log.Debug("partition held", "topic", id.Topic, "partition", id.Partition, "offset", rec.Offset,
		"until", w.Until, "reason", w.Reason, "err", w.Err)
}

func (s *Stage) isHeld(id TaskID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.holds[id]
	return ok
}

// rewindHolds sets the consume and commit offset of every partition held in the open
// transaction to the record it waits on.
func (s *Stage) rewindHolds() {
	set := make(map[string]map[int32]kgo.EpochOffset)
	s.mu.Lock()
	for id, h := range s.holds {
		if !h.fresh {
			continue
		}
		if set[id.Topic] == nil {
			set[id.Topic] = make(map[int32]kgo.EpochOffset)
		}
		set[id.Topic][id.Partition] = kgo.EpochOffset{Epoch: h.epoch, Offset: h.offset}
	}
	s.mu.Unlock()
	if len(set) > 0 {
		s.sess.Client().SetOffsets(set)
	}
}

// settleHolds keeps the holds of a committed transaction; an aborted one rewinds every
// partition to its last commit anyway, so its fresh holds are dropped and resumed.
func (s *Stage) settleHolds(committed bool) {
	resume := make(map[string][]int32)
	s.mu.Lock()
	for id, h := range s.holds {
		if !h.fresh {
			continue
		}
		if committed {
			h.fresh = false
			continue
		}
		delete(s.holds, id)
		resume[id.Topic] = append(resume[id.Topic], id.Partition)
	}
	s.mu.Unlock()
	if len(resume) > 0 {
		s.sess.Client().ResumeFetchPartitions(resume)
	}
}

// resumeDue resumes the held partitions that are due and returns when the earliest of
// the others is, and whether there is one.
func (s *Stage) resumeDue() (time.Time, bool) {
	now := s.cfg.Now()
	resume := make(map[string][]int32)
	var next time.Time
	s.mu.Lock()
	for id, h := range s.holds {
		if !h.until.After(now) {
			delete(s.holds, id)
			resume[id.Topic] = append(resume[id.Topic], id.Partition)
			continue
		}
		if next.IsZero() || h.until.Before(next) {
			next = h.until
		}
	}
	s.mu.Unlock()
	if len(resume) > 0 {
		s.sess.Client().ResumeFetchPartitions(resume)
	}
	return next, !next.IsZero()
}

// Held returns the partitions currently held and until when (tests, metrics).
func (s *Stage) Held() map[TaskID]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[TaskID]time.Time, len(s.holds))
	for id, h := range s.holds {
		out[id] = h.until
	}
	return out
}
