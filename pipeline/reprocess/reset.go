package reprocess

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// ResetTo says where a reset stage starts reading its inputs.
type ResetTo string

const (
	// ResetEarliest starts at the start of every input (the stage rebuilds its state from
	// all retained input): the default, and what a stage with no offsets does.
	ResetEarliest ResetTo = "earliest"
	// ResetLatest starts at the end: what was not processed yet is skipped.
	ResetLatest ResetTo = "latest"
	// ResetTime starts at the first record at or after ResetOptions.Time.
	ResetTime ResetTo = "time"
)

// ResetOptions describe `sluice reset --stage NAME`.
type ResetOptions struct {
	Pipeline *config.Pipeline
	Kafka    kafka.Config
	// Stage is a stage name: clean, retry, repartition.<agg> or agg.<agg>.
	Stage string
	To    ResetTo
	Time  time.Time
	// StateDirs are the --state-dir roots of the processes on this host whose local
	// state of the stage is deleted (each must not be in use).
	StateDirs []string
	DryRun    bool
}

// ResetPlan is what a reset deletes (or, with DryRun, would delete).
type ResetPlan struct {
	Stage      string           `json:"stage"`
	Group      string           `json:"group"`
	Inputs     []string         `json:"inputs"`
	To         string           `json:"to"`
	Offsets    map[string]int64 `json:"offsets"` // "topic/partition" -> where it starts
	Changelogs []string         `json:"changelog_topics"`
	StateDirs  []string         `json:"state_dirs"`
	DryRun     bool             `json:"dry_run"`
}

// stageInputs are the input topics of stage name in pipeline p.
func stageInputs(p *config.Pipeline, name string) ([]string, error) {
	var all []string
	switch {
	case name == wire.StageClean:
		for _, t := range p.Topics {
			all = append(all, t.Name)
		}
		return all, nil
	case name == wire.StageRetry:
		for _, d := range p.RetryTiers {
			all = append(all, wire.RetryTopic(d.D()))
		}
		if len(all) == 0 {
			return nil, errors.New("reset: the pipeline has no retry tiers, so no retry stage")
		}
		return all, nil
	}
	for _, a := range p.Aggregations {
		switch name {
		case wire.StageRepartition(a.Name):
			return []string{wire.CleanTopic(a.From)}, nil
		case wire.StageAggregate(a.Name):
			return []string{wire.RepartitionTopic(a.Name)}, nil
		}
	}
	names := []string{wire.StageClean}
	if len(p.RetryTiers) > 0 {
		names = append(names, wire.StageRetry)
	}
	for _, a := range p.Aggregations {
		names = append(names, wire.StageRepartition(a.Name), wire.StageAggregate(a.Name))
	}
	return nil, fmt.Errorf("reset: unknown stage %q (the pipeline's stages: %s)", name, strings.Join(names, ", "))
}

// Reset deletes a stage's committed offsets (or moves them to where o.To says), its
// changelog topics and its local state directories, so that its next start rebuilds
// its state from its inputs. It refuses while any member of the stage's consumer group
// is alive, or while a process holds one of o.StateDirs.
func Reset(ctx context.Context, o ResetOptions) (*ResetPlan, error) {
	inputs, err := stageInputs(o.Pipeline, o.Stage)
	if err != nil {
		return nil, err
	}
	if o.To == "" {
		o.To = ResetEarliest
	}
	group := wire.GroupID(o.Stage)
	plan := &ResetPlan{Stage: o.Stage, Group: group, Inputs: inputs, To: string(o.To), Offsets: map[string]int64{}, DryRun: o.DryRun}
	if o.To == ResetTime {
		plan.To = o.Time.UTC().Format(time.RFC3339Nano)
	}
	cl, err := kgo.NewClient(o.Kafka.Opts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// No member may be alive.
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("reset: describe group %s: %w", group, err)
	}
	if g, ok := gs[group]; ok {
		if g.Err != nil {
			return nil, fmt.Errorf("reset: describe group %s: %w", group, g.Err)
		}
		if len(g.Members) > 0 {
			var who []string
			for _, m := range g.Members {
				who = append(who, m.ClientID+"@"+m.ClientHost)
			}
			slices.Sort(who)
			return nil, fmt.Errorf("reset: stage %s is running: its group %s has %d live member(s) (%s, state %s); stop every process that runs it first",
				o.Stage, group, len(g.Members), strings.Join(who, ", "), g.State)
		}
	}
	// No process may hold a state directory.
	for _, root := range o.StateDirs {
		dir := filepath.Join(root, o.Stage)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		lock, err := pebblestore.LockRoot(root)
		if err != nil {
			return nil, fmt.Errorf("reset: state directory %s is in use (%w); stop the process that uses it first", root, err)
		}
		_ = lock.Close()
		plan.StateDirs = append(plan.StateDirs, dir)
	}
	// The changelog topics of the stage.
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("reset: list topics: %w", err)
	}
	prefix := wire.ReservedPrefix + "." + o.Stage + "."
	for _, t := range topics.Names() {
		if strings.HasPrefix(t, prefix) && strings.HasSuffix(t, "-changelog") {
			plan.Changelogs = append(plan.Changelogs, t)
		}
	}
	slices.Sort(plan.Changelogs)
	// Where each input partition starts.
	var listed kadm.ListedOffsets
	switch o.To {
	case ResetEarliest:
		listed, err = adm.ListStartOffsets(ctx, inputs...)
	case ResetLatest:
		listed, err = adm.ListEndOffsets(ctx, inputs...)
	case ResetTime:
		listed, err = adm.ListOffsetsAfterMilli(ctx, o.Time.UnixMilli(), inputs...)
	default:
		return nil, fmt.Errorf("reset: --to %q: want earliest, latest or a time", o.To)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reset: offsets of %s: %w", strings.Join(inputs, ", "), err)
	}
	offsets := listed.Offsets()
	offsets.Each(func(x kadm.Offset) { plan.Offsets[fmt.Sprintf("%s/%d", x.Topic, x.Partition)] = x.At })
	if o.DryRun {
		return plan, nil
	}

	// Offsets first: a stage that started now would find offsets and no state, which is
	// why the group must be empty (checked above; the broker refuses a commit to a group
	// with members too).
	if _, err := adm.DeleteGroup(ctx, group); err != nil && !isGroupMissing(err) {
		return nil, fmt.Errorf("reset: delete group %s: %w", group, err)
	}
	if o.To != ResetEarliest {
		resp, err := adm.CommitOffsets(ctx, group, offsets)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("reset: commit offsets of %s: %w", group, err)
		}
	}
	if len(plan.Changelogs) > 0 {
		resp, err := adm.DeleteTopics(ctx, plan.Changelogs...)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("reset: delete changelog topics: %w", err)
		}
		if err := recreate(ctx, adm, o.Pipeline, plan.Changelogs); err != nil {
			return nil, err
		}
	}
	for _, d := range plan.StateDirs {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("reset: remove state %s: %w", d, err)
		}
	}
	return plan, nil
}

func isGroupMissing(err error) bool { return errors.Is(err, kerr.GroupIDNotFound) }

// recreate waits until the deleted changelog topics are gone (a broker deletes
// asynchronously) and creates them again, empty, as the pipeline's topic set-up does.
func recreate(ctx context.Context, adm *kadm.Client, p *config.Pipeline, names []string) error {
	var specs []kafka.TopicSpec
	for _, s := range kafka.TopicsFor(p) {
		if slices.Contains(names, s.Name) {
			specs = append(specs, s)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		td, err := adm.ListTopics(ctx, names...)
		if err != nil {
			return fmt.Errorf("reset: list topics: %w", err)
		}
		gone := true
		for _, n := range names {
			if d, ok := td[n]; ok && d.Err == nil {
				gone = false
			}
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reset: changelog topics %s still exist a minute after their deletion", strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := kafka.EnsureTopics(ctx, adm, specs); err != nil {
		return fmt.Errorf("reset: recreate changelog topics: %w", err)
	}
	return nil
}
