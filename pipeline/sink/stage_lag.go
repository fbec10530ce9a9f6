package sink

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// lagCommitTimeout bounds the final lag commit at shutdown.
const lagCommitTimeout = 5 * time.Second

// lagCommits copies committed warehouse offsets into the consumer group in the
// background. The group's offsets only report lag (sluice_consumer_lag, kafka tools);
// the stage never reads them back. A commit can wait for a join in progress, so the
// polling goroutine only records the newest offset per partition and one goroutine
// commits, in order, whatever is newest.
type lagCommits struct {
	mu      sync.Mutex
	pending map[string]map[int32]kgo.EpochOffset
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

func newLagCommits() *lagCommits {
	return &lagCommits{pending: map[string]map[int32]kgo.EpochOffset{}, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
}

// set records end as tp's offset to commit.
func (l *lagCommits) set(tp topicPartition, end int64) {
	l.mu.Lock()
	ps := l.pending[tp.topic]
	if ps == nil {
		ps = map[int32]kgo.EpochOffset{}
		l.pending[tp.topic] = ps
	}
	ps[tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: end}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// drop forgets what is pending for tp (revoked: its new owner commits it).
func (l *lagCommits) drop(tp topicPartition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pending[tp.topic], tp.partition)
}

func (l *lagCommits) take() map[string]map[int32]kgo.EpochOffset {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]map[int32]kgo.EpochOffset{}
	for t, ps := range l.pending {
		if len(ps) > 0 {
			out[t] = ps
		}
	}
	clear(l.pending)
	return out
}

// run commits until ctx ends, or until stop: then it commits what is left once.
func (l *lagCommits) run(ctx context.Context, s *Stage) {
	defer close(l.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.wake:
			l.commit(ctx, s)
		case <-l.quit:
			cctx, cancel := context.WithTimeout(ctx, lagCommitTimeout)
			l.commit(cctx, s)
			cancel()
			return
		}
	}
}

func (l *lagCommits) commit(ctx context.Context, s *Stage) {
	offs := l.take()
	if len(offs) == 0 {
		return
	}
	s.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil && resp != nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err = kerr.ErrorForCode(p.ErrorCode); err != nil {
						break
					}
				}
			}
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Debug("lag offset commit failed", "err", err)
		}
	})
}

// stop commits what is pending and ends run; it returns when run returned.
func (l *lagCommits) stop() {
	close(l.quit)
	<-l.done
}
