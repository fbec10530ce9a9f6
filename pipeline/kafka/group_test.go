package kafka_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/kafka"
)

// A static member does not leave its group when its client closes: LeaveStatic takes
// it out at once (its partitions move to the other member long before the session
// timeout), and a leave under an old member id does not remove a restarted member that
// already took the instance id.
func TestLeaveStaticFreesPartitionsAtOnce(t *testing.T) {
	c := newCluster(t)
	adm := newAdmin(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	const group = "g"
	// A session far longer than the test: only an explicit leave moves partitions.
	cfg := func(id string) kafka.Config {
		return kafka.Config{Brokers: c.ListenAddrs(), InstanceID: id, SessionTimeout: time.Minute}
	}
	member := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(append(append(cfg(id).Opts(), cfg(id).GroupOpts()...),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics("t"))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	// members polls the group until its static members are want (sorted).
	members := func(want ...string) {
		t.Helper()
		var got []string
		for i := 0; i < 500; i++ {
			// Polling keeps the members' sessions going; a short poll returns at once.
			got = got[:0]
			ds, err := adm.DescribeGroups(ctx, group)
			if err == nil {
				for _, m := range ds[group].Members {
					if m.InstanceID != nil {
						got = append(got, *m.InstanceID)
					}
				}
				slices.Sort(got)
				if slices.Equal(got, want) && ds[group].State == "Stable" {
					return
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("group members %v, want %v: %v", got, want, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.Fatalf("group members %v, want %v", got, want)
	}
	poll := func(cls ...*kgo.Client) {
		for _, cl := range cls {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			cl.PollFetches(pctx)
			cancel()
		}
	}
	a, b := member("a"), member("b")
	poll(a, b)
	members("a", "b")

	aID, _ := a.GroupMetadata()
	a.Close()
	// Closing alone leaves the static member in the group, holding its partitions.
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil || len(ds[group].Members) != 2 {
		t.Fatalf("after close: %d members (%v), want 2: a static member stays", len(ds[group].Members), err)
	}
	if err := cfg("a").LeaveStatic(ctx, nil, group, aID); err != nil {
		t.Fatalf("leave: %v", err)
	}
	start := time.Now()
	members("b")
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("member b alone after %s", took)
	}

	// "a" restarts; a late leave under its old member id must not remove it.
	a2 := member("a")
	poll(a2, b)
	members("a", "b")
	if err := cfg("a").LeaveStatic(ctx, nil, group, aID); err != nil {
		t.Fatalf("stale leave: %v", err)
	}
	ds, err = adm.DescribeGroups(ctx, group)
	if err != nil || len(ds[group].Members) != 2 {
		t.Fatalf("a stale leave removed a member: %d members (%v)", len(ds[group].Members), err)
	}
	// Without an instance id there is nothing to leave.
	if err := (kafka.Config{Brokers: c.ListenAddrs()}).LeaveStatic(ctx, nil, group, "x"); err != nil {
		t.Errorf("dynamic member: %v", err)
	}
}
