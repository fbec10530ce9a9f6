package process

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

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
