package harness

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/stagekit"
)

// Processor is one running processor instance: every stage of the pipeline (or only the
// clean stage, with WithCleanOnly).
type Processor struct {
	// InstanceID is the instance's id (part of its transactional id).
	InstanceID string
	proc       *service.Processor
	cancel     context.CancelFunc
	done       chan error
}

// StartProcessor starts a processor instance (every stage of the pipeline, or the clean
// stage alone for a pipeline started clean-only) with a new instance id.
func (p *Pipeline) StartProcessor() *Processor {
	p.mu.Lock()
	p.nextIID++
	id := fmt.Sprintf("test-%d", p.nextIID)
	p.mu.Unlock()
	return p.StartProcessorID(id)
}

// StartProcessorID starts a processor instance (as StartProcessor) with the given instance id; reusing the id
// of a killed instance fences the transaction it left open, as a restarted pod would.
func (p *Pipeline) StartProcessorID(id string) *Processor {
	p.t.Helper()
	d := p.Deps
	d.Service.InstanceID = id
	if d.Service.State.Dir == "" {
		d.Service.State.Dir = p.StateDir(id)
	}
	var proc *service.Processor
	var err error
	if p.cleanOnly {
		proc, err = service.NewCleanProcessor(p.t.Context(), d, p.Schemas, p.pm)
	} else {
		proc, err = service.NewProcessor(p.t.Context(), d, p.Schemas, p.pm)
	}
	if err != nil {
		p.t.Fatalf("start processor %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr := &Processor{InstanceID: id, proc: proc, cancel: cancel, done: make(chan error, 1)}
	go func() { pr.done <- proc.Run(ctx) }()
	p.mu.Lock()
	p.procs = append(p.procs, pr)
	p.mu.Unlock()
	p.t.Cleanup(func() { pr.Stop() })
	return pr
}

// Stop shuts the instance down gracefully (its open transaction ends) and waits.
func (pr *Processor) Stop() error {
	pr.cancel()
	err := <-pr.done
	pr.done <- err
	if errors.Is(err, stagekit.ErrKilled) {
		return nil
	}
	return err
}

// Sever cuts the instance's broker connections at once, as a crash would, without
// waiting for it to stop (safe inside a kfake control function, where Kill would wait on
// the request being controlled); Wait then waits for it.
func (pr *Processor) Sever() { pr.proc.Kill() }

// Wait waits until the instance stopped and returns what it ended with.
func (pr *Processor) Wait() error {
	err := <-pr.done
	pr.done <- err
	return err
}

// Kill closes the instance's clients abruptly, as a crash would: its open transaction
// is neither committed nor aborted. It waits until the instance stopped.
func (pr *Processor) Kill() {
	pr.proc.Kill()
	err := <-pr.done
	pr.done <- err
}
