package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// startAggregation applies an aggregation's start (config.Aggregation.Start) before its
// repartition stage first runs: when the stage's group has no committed offset on
// <from>.clean yet and start is latest or a time, it commits the offsets to start from
// (the end, or the first record at or after the time). A stage with no offsets starts
// at the earliest retained record, so earliest needs nothing, and an aggregation that
// already ran resumes where it committed.
func startAggregation(ctx context.Context, kc kafka.Config, a config.Aggregation) error {
	at, timed, err := a.StartTime()
	if err != nil {
		return fmt.Errorf("aggregation %s: start: %w", a.Name, err)
	}
	if !timed && a.Start != config.StartLatest {
		return nil
	}
	cl, err := kgo.NewClient(kc.Opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	group := wire.GroupID(wire.StageRepartition(a.Name))
	clean := wire.CleanTopic(a.From)
	committed := func() (bool, error) {
		resp, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = resp.Error()
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("aggregation %s: committed offsets of %s: %w", a.Name, group, err)
		}
		_, ok := resp.Offsets()[clean]
		return ok, nil
	}
	if done, err := committed(); err != nil || done {
		return err
	}
	var listed kadm.ListedOffsets
	if timed {
		listed, err = adm.ListOffsetsAfterMilli(ctx, at.UnixMilli(), clean)
	} else {
		listed, err = adm.ListEndOffsets(ctx, clean)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return fmt.Errorf("aggregation %s: start offsets of %s: %w", a.Name, clean, err)
	}
	resp, err := adm.CommitOffsets(ctx, group, listed.Offsets())
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		// Another instance may have joined and committed first; then it is set.
		if done, ferr := committed(); ferr == nil && done {
			return nil
		}
		return fmt.Errorf("aggregation %s: commit its start (%s) for %s: %w", a.Name, a.Start, group, err)
	}
	return nil
}
