package sink_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/stagekit"
)

// running is a stage running in the background.
type running struct {
	st     *sink.Stage
	cancel context.CancelFunc
	done   chan error
}

// run starts a stage; it is stopped at cleanup.
func (e *stageEnv) run(cfg sink.StageConfig) *running {
	e.t.Helper()
	st, err := sink.NewStage(e.t.Context(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{st: st, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- st.Run(ctx) }()
	e.t.Cleanup(func() {
		if err := r.stop(); err != nil && !errors.Is(err, stagekit.ErrKilled) {
			e.t.Errorf("stage: %v", err)
		}
	})
	return r
}

// stop shuts the stage down gracefully and returns Run's result.
func (r *running) stop() error {
	r.cancel()
	err := <-r.done
	r.done <- err
	return err
}

// kill kills the stage and waits until Run returned.
func (r *running) kill(t *testing.T) {
	t.Helper()
	r.st.Kill()
	select {
	case err := <-r.done:
		r.done <- err
		if !errors.Is(err, stagekit.ErrKilled) {
			t.Fatalf("killed stage returned %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("killed stage did not return")
	}
}

// countingWarehouse counts what it committed and can interfere after a commit.
type countingWarehouse struct {
	sink.Warehouse
	mu     sync.Mutex
	writes int
	rows   int
	claims int
	// afterWrite, if set, runs after each committed write (n counts them) and its
	// result is returned instead of nil: it can block, or lose the acknowledgement.
	afterWrite func(ctx context.Context, n int) error
}

func (c *countingWarehouse) Write(ctx context.Context, b sink.Batch) error {
	if err := c.Warehouse.Write(ctx, b); err != nil {
		return err
	}
	c.mu.Lock()
	c.writes++
	c.rows += len(b.Rows)
	n, hook := c.writes, c.afterWrite
	c.mu.Unlock()
	if hook != nil {
		return hook(ctx, n)
	}
	return nil
}

func (c *countingWarehouse) Claim(ctx context.Context, topic string, partition int32) (int64, int64, error) {
	epoch, next, err := c.Warehouse.Claim(ctx, topic, partition)
	if err == nil {
		c.mu.Lock()
		c.claims++
		c.mu.Unlock()
	}
	return epoch, next, err
}

func (c *countingWarehouse) counts() (writes, rows, claims int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.rows, c.claims
}
