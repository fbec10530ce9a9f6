package process

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

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
