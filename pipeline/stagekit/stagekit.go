// Package stagekit is what every stage runtime of Sluice shares: the processor's
// consume-process-produce stages (pipeline/process) and the warehouse sink
// (pipeline/sink). It holds the crash switch tests kill a stage with, the error a killed
// stage returns, the fetch-error filter of the poll loop and the static member's leave
// on a clean close, written once (docs/DESIGN.md#stages-and-transactions).
package stagekit

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// ErrKilled is returned by a stage's Run after Kill.
var ErrKilled = errors.New("stage killed")

// Crash lets a stage die as a crashed process would: Kill cuts every broker connection
// of the clients that dial through it at once and refuses new ones, so the brokers see
// no leave-group, no final commit and no EndTxn (the stage's partitions move after the
// session timeout; a transaction it left open is fenced or times out). For tests.
type Crash struct {
	dialer *kafka.SeverableDialer
	// ctx ends only when the stage is killed: work that shutdown drains but Kill stops
	// runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
}

// NewCrash returns a live Crash whose dials go through next (kafka.Config.Dial; nil: a
// plain net.Dialer).
func NewCrash(next func(ctx context.Context, network, host string) (net.Conn, error)) *Crash {
	c := &Crash{dialer: kafka.NewSeverableDialer(next)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Dial has the signature of kafka.Config.Dial: the clients of the stage dial through it
// (TLS runs over it, so Kill cuts TLS connections too).
func (c *Crash) Dial(ctx context.Context, network, host string) (net.Conn, error) {
	return c.dialer.DialContext(ctx, network, host)
}

// Kill severs every connection and ends Context, once; then, on the first call only, it
// runs after (if not nil).
func (c *Crash) Kill(after func()) {
	c.once.Do(func() {
		c.dialer.Sever()
		c.cancel()
		if after != nil {
			after()
		}
	})
}

// Killed reports whether Kill was called.
func (c *Crash) Killed() bool { return c.ctx.Err() != nil }

// Context ends when the stage is killed, and only then.
func (c *Crash) Context() context.Context { return c.ctx }

// LogFetchErrors logs the errors of a poll, except the context ends of a poll that was
// cut short on purpose (shutdown, a poll bound).
func LogFetchErrors(log *slog.Logger, fs kgo.Fetches) {
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		}
	})
}

// leaveWait bounds the leave of a closing static member.
const leaveWait = 5 * time.Second

// LeaveGroup makes a static member (kc.InstanceID set) of group leave it on a clean
// close: a static member does not leave when its client closes, so without it the
// partitions would move to the other instances only after the session timeout. cl, if
// set, sends the request (else a client of its own). A failure is logged.
func LeaveGroup(kc kafka.Config, cl *kgo.Client, group, member string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), leaveWait)
	defer cancel()
	if err := kc.LeaveStatic(ctx, cl, group, member); err != nil {
		log.Warn("leaving the group failed; its partitions move after the session timeout", "err", err)
	}
}
