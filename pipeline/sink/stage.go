package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/stagekit"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// Stage consumes clean and aggregate topics and writes them to the warehouse exactly
// once.
//
// On assignment it claims each partition (Warehouse.Claim: a new owner epoch, fencing
// the previous owner) and starts consuming at the warehouse's offset, not the group's:
// the group's committed offsets only report lag and are written after the warehouse
// committed. Records are buffered per partition and flushed by rows, bytes, or
// FlushInterval after the first buffered record (a timer wakes the poll, so the time
// flush fires without new records). A flush commits [first unflushed offset, last
// polled offset + 1): transaction markers and dead-lettered records inside that range
// are covered, never skipped silently.
//
// Failures: an undecodable record, a record whose writer schema does not fit its table
// and a row the warehouse rejects go to the DLQ (class permanent, sluice-stage sink),
// produced with acks=all and acknowledged before the offsets covering them commit. A
// crash between the two can dead-letter a record twice (dead letters of the sink are
// at least once; rows are exactly once). ErrFenced stops the partition (another
// instance owns it); ErrOffsetMismatch claims again and seeks; other warehouse errors
// are retried with backoff, never dropped.
//
// Schema evolution: the first record of each writer schema id calls EnsureTable with
// that schema, which adds a column per new field; an incompatible schema dead-letters
// its records.
//
// On revocation the partition's buffer is dropped: the warehouse offset is the truth,
// and the next owner re-reads from it. At shutdown (Run's context ends) every buffer is
// flushed before the stage leaves the group.
type Stage struct {
	cfg StageConfig
	cl  *kgo.Client
	// kc is how cl reaches Kafka (its dialer and static membership id).
	kc  kafka.Config
	log *slog.Logger
	m   *stageMetrics
	lag *lagCommits

	mu    sync.Mutex
	parts map[topicPartition]*partition

	// schemaIDs are the writer schema ids seen per event table: nil once EnsureTable
	// took the schema, else the permanent error that dead-letters its records. Touched
	// by the polling goroutine only.
	schemaIDs map[string]map[int]error

	closeOnce sync.Once
	started   atomic.Bool
	// crash kills the stage (tests): a drain runs under its context.
	crash *stagekit.Crash
}

// NewStage migrates the warehouse, creates the event tables from their pipeline
// schemas and builds the stage's Kafka client (which connects lazily).
func NewStage(ctx context.Context, cfg StageConfig) (*Stage, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Stage{
		cfg:       cfg,
		log:       cfg.Logger.With("stage", wire.StageSink),
		parts:     map[topicPartition]*partition{},
		schemaIDs: map[string]map[int]error{},
		crash:     stagekit.NewCrash(cfg.Kafka.Dial),
		lag:       newLagCommits(),
	}
	if cfg.InstanceID != "" {
		s.log = s.log.With("instance", cfg.InstanceID)
	}
	if err := cfg.Warehouse.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("sink stage: %w", err)
	}
	for _, t := range cfg.Topics {
		table, sch, agg, _ := cfg.Schemas(t)
		if agg {
			continue
		}
		if err := cfg.Warehouse.EnsureTable(ctx, table, sch); err != nil {
			return nil, fmt.Errorf("sink stage: topic %s: %w", t, err)
		}
	}
	m, err := newStageMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("sink stage: metrics: %w", err)
	}
	s.m = m

	kc := cfg.Kafka
	kc.Dial = s.crash.Dial
	// Static membership: an instance restarted under its id takes its predecessor's
	// partitions at once instead of after the session timeout.
	kc.InstanceID = cfg.InstanceID
	s.kc = kc
	if kc.ClientID == "" {
		kc.ClientID = wire.ClientID(wire.StageSink)
		if cfg.InstanceID != "" {
			kc.ClientID += "-" + cfg.InstanceID
		}
	}
	opts := append(append(kc.Opts(), kc.GroupOpts()...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers take offsets too: delivered, they let a batch end exactly at the high
		// watermark, so SLUICE_OFFSETS and the group's lag reach the end of the log.
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// The warehouse holds the offsets; Kafka commits only report lag.
		kgo.DisableAutoCommit(),
		// Revocations run between polls only, so a flush never races them and SetOffsets
		// (after an offset mismatch) is safe.
		kgo.BlockRebalanceOnPoll(),
		// Seek each newly assigned partition to its claimed warehouse offset before its
		// first fetch.
		kgo.AdjustFetchOffsetsFn(s.adjust),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.revoked),
		// A partition resumed after a fence joins the next fetch request only.
		kgo.FetchMaxWait(500*time.Millisecond),
		// Dead letters keep their source partition when the DLQ topic has it.
		kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
			return func(r *kgo.Record, n int) int { return int(r.Partition) % n }
		})),
	)
	opts = append(opts, kafka.ClientMetrics(cfg.ClientMetrics, wire.StageSink)...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("sink stage: %w", err)
	}
	s.cl = cl
	return s, nil
}

// Run consumes and writes until ctx ends, then flushes every buffer (bounded by
// DrainTimeout), commits the last lag offsets, leaves the group and closes the client.
// It returns nil after a clean shutdown, stagekit.ErrKilled after Kill, or the error that
// stopped it (a warehouse that reports a caller bug, such as ErrUnknownTable). Call it
// once.
func (s *Stage) Run(ctx context.Context) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.crash.Context(), cancel)
	defer stop()
	s.started.Store(true)
	lagCtx, stopLag := context.WithCancel(s.crash.Context())
	go s.lag.run(lagCtx, s)
	defer func() {
		if s.crash.Killed() {
			stopLag()
			// Closing would try to leave the group through severed connections: let it
			// give up in the background, as the dead process it stands for would.
			go s.close()
			err = stagekit.ErrKilled
			return
		}
		s.lag.stop()
		stopLag()
		s.close()
	}()
	s.log.Info("sink running", "topics", s.cfg.Topics, "group", s.cfg.Group)
	for {
		pctx, cancelPoll := s.pollContext(ctx)
		fs := s.cl.PollRecords(pctx, s.cfg.FlushRows)
		cancelPoll()
		if s.crash.Killed() || fs.IsClientClosed() {
			return stagekit.ErrKilled
		}
		if ctx.Err() != nil {
			return s.drain()
		}
		stagekit.LogFetchErrors(s.log, fs)
		err := s.handle(ctx, fs)
		if err == nil {
			err = s.flushDue(ctx, false)
		}
		if err == nil {
			err = s.reclaimDue(ctx)
		}
		switch {
		case err == nil:
		case s.crash.Killed():
			return stagekit.ErrKilled
		case ctx.Err() != nil:
			return s.drain()
		default:
			return err
		}
		s.cl.AllowRebalance()
	}
}

// pollContext bounds a poll by the earliest time flush or fenced-partition retry, on
// the injected clock.
func (s *Stage) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	wake, ok := s.nextWake()
	if !ok {
		return ctx, func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	stop := s.cfg.AfterFunc(wake.Sub(s.cfg.Now()), cancel)
	return pctx, func() { stop(); cancel() }
}

// nextWake is when the poll must return at the latest.
func (s *Stage) nextWake() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wake time.Time
	for _, p := range s.parts {
		var at time.Time
		switch {
		case p.fenced:
			at = p.reclaimAt
		case !p.empty():
			at = p.since.Add(s.cfg.FlushInterval)
		default:
			continue
		}
		if wake.IsZero() || at.Before(wake) {
			wake = at
		}
	}
	return wake, !wake.IsZero()
}

// handle buffers the records of fs, flushing a partition whenever it is full.
func (s *Stage) handle(ctx context.Context, fs kgo.Fetches) error {
	var err error
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if err != nil || len(fp.Records) == 0 {
			return
		}
		err = s.handlePartition(ctx, fp)
	})
	return err
}

func (s *Stage) handlePartition(ctx context.Context, fp kgo.FetchTopicPartition) error {
	p := s.partition(topicPartition{fp.Topic, fp.Partition})
	if p == nil {
		return nil // revoked, or never claimed (the claim failed and the session ends)
	}
	gen := p.gen
	for _, r := range fp.Records {
		if p.fenced || p.gen != gen {
			// Fenced, or claimed again and seeked: the rest of this fetch is stale.
			return nil
		}
		if r.Offset < p.end {
			if !p.warnedBehind {
				p.warnedBehind = true
				s.log.Warn("record before the warehouse offset skipped (seek in flight, or the topic was recreated?)",
					"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "next", p.end)
			}
			continue
		}
		if err := s.add(ctx, p, r); err != nil {
			return err
		}
		if p.full(s.cfg.FlushRows, s.cfg.FlushBytes) {
			if err := s.flush(ctx, p); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushDue flushes every partition that is full or whose first buffered record waited
// FlushInterval; all flushes every non-empty one.
func (s *Stage) flushDue(ctx context.Context, all bool) error {
	now := s.cfg.Now()
	var errs []error
	for _, p := range s.snapshot() {
		if p.fenced || p.empty() {
			continue
		}
		if all || p.full(s.cfg.FlushRows, s.cfg.FlushBytes) || !now.Before(p.since.Add(s.cfg.FlushInterval)) {
			if err := s.flush(ctx, p); err != nil {
				if ctx.Err() != nil {
					return err
				}
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// drain flushes every buffer at shutdown.
func (s *Stage) drain() error {
	ctx, cancel := context.WithTimeout(s.crash.Context(), s.cfg.DrainTimeout)
	defer cancel()
	if err := s.flushDue(ctx, true); err != nil {
		return fmt.Errorf("sink: drain: %w", err)
	}
	return nil
}

// snapshot lists the owned partitions.
func (s *Stage) snapshot() []*partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*partition, 0, len(s.parts))
	for _, p := range s.parts {
		out = append(out, p)
	}
	return out
}

func (s *Stage) partition(tp topicPartition) *partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parts[tp]
}

// Kill makes the stage die as a crashed process would: every broker connection is cut
// at once and an in-flight warehouse call is canceled, so nothing buffered is flushed,
// no offset is committed to Kafka and the group is not left (the partitions move after
// the session timeout). Run returns stagekit.ErrKilled. Killing a stage that never ran
// releases its client. For tests.
func (s *Stage) Kill() {
	s.crash.Kill(func() {
		if !s.started.Load() {
			go s.close()
		}
	})
}

func (s *Stage) close() {
	s.closeOnce.Do(func() {
		member, _ := s.cl.GroupMetadata()
		s.cl.CloseAllowingRebalance()
		if !s.crash.Killed() {
			stagekit.LeaveGroup(s.kc, nil, s.cfg.Group, member, s.log)
		}
		s.m.forget(s, topicPartition{}, true)
	})
}
