package process

import (
	"time"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/twmb/franz-go/pkg/kgo"
)

// hold is a partition paused on a record that asked to wait (dlq.WaitError): the stage
// rewinds the partition to that record and resumes it at until.
type hold struct {
	offset int64
	epoch  int32
	until  time.Time
	// fresh holds were set in the open transaction: their offsets are set before it ends.
	fresh bool
}

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
