package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/wire"
)

func TestParseFilter(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name                string
		filter, since, till string
		max                 int
		want                dlq.Filter
		wantErr             string
	}{
		{name: "empty"},
		{name: "class and stage", filter: "class=permanent,stage=clean", want: dlq.Filter{Classes: []string{"permanent"}, Stages: []string{"clean"}}},
		{name: "repeated key", filter: "class=permanent, class=transient", want: dlq.Filter{Classes: []string{"permanent", "transient"}}},
		{name: "range and max", since: "2026-11-27T10:00:00Z", till: "2026-11-27T11:00:00Z", max: 5,
			want: dlq.Filter{Since: at, Until: at.Add(time.Hour), Max: 5}},
		{name: "not key=value", filter: "permanent", wantErr: "not key=value"},
		{name: "empty value", filter: "class=", wantErr: "not key=value"},
		{name: "unknown key", filter: "topic=x", wantErr: "unknown key"},
		{name: "bad since", since: "yesterday", wantErr: "--since"},
		{name: "bad until", till: "2026-13-01T00:00:00Z", wantErr: "--until"},
		{name: "empty range", since: "2026-11-27T10:00:00Z", till: "2026-11-27T10:00:00Z", wantErr: "before --until"},
		{name: "negative max", max: -1, wantErr: "--max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseFilter(c.filter, c.since, c.till, c.max)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(f.Classes, ",") != strings.Join(c.want.Classes, ",") ||
				strings.Join(f.Stages, ",") != strings.Join(c.want.Stages, ",") ||
				!f.Since.Equal(c.want.Since) || !f.Until.Equal(c.want.Until) || f.Max != c.want.Max {
				t.Errorf("filter = %+v, want %+v", f, c.want)
			}
		})
	}
}

func TestDlqUsage(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"no subcommand", []string{"dlq"}},
		{"unknown subcommand", []string{"dlq", "purge", "purchases.dlq"}},
		{"no topic", []string{"dlq", "inspect"}},
		{"two topics", []string{"dlq", "inspect", "a.dlq", "b.dlq"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := runCmd(t, t.Context(), c.args...)
			if err == nil || !strings.Contains(err.Error(), "usage: sluice dlq") {
				t.Errorf("err = %v, want the usage", err)
			}
		})
	}
}

// inspectedOut is the printed inspect summary.
type inspectedOut struct {
	Topic     string         `json:"topic"`
	Total     int            `json:"total"`
	ByClass   map[string]int `json:"by_class"`
	ByStage   map[string]int `json:"by_stage"`
	ByReason  map[string]int `json:"by_reason"`
	Oldest    string         `json:"oldest_first_failure"`
	OldestAge string         `json:"oldest_age"`
	Samples   []consumed     `json:"samples"`
}

func TestDlqInspectAndReplay(t *testing.T) {
	t.Parallel()
	d := startDev(t)
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.Broker()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "replay.out"); err != nil {
		t.Fatal(err)
	}
	failed := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var dead []*kgo.Record
	for i, l := range []dlq.Letter{
		{Stage: "clean", Class: dlq.Permanent, Err: errors.New("amount: must be >= 0"), FirstFailure: failed},
		{Stage: "clean", Class: dlq.Permanent, Err: errors.New("amount: must be >= 0 (got -1)"), FirstFailure: failed.Add(time.Minute)},
		{Stage: "sink", Class: dlq.Transient, Err: errors.New("timeout"), Attempts: 4, FirstFailure: failed.Add(2 * time.Minute)},
	} {
		src := &kgo.Record{Topic: "purchases", Partition: int32(i % 2), Offset: int64(i), Key: []byte("u-1"), Value: []byte("not avro"),
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t")}}}
		dead = append(dead, dlq.Record(src, "purchases.dlq", l))
	}
	if err := cl.ProduceSync(ctx, dead...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	common := []string{"--brokers", d.Broker(), "--registry-url", d.RegistryURL()}

	t.Run("inspect", func(t *testing.T) {
		// Flags before and after the subcommand and the topic.
		out, err := runCmd(t, ctx, append(append([]string{"dlq"}, common...), "inspect", "purchases.dlq", "--samples", "2")...)
		if err != nil {
			t.Fatal(err)
		}
		var got inspectedOut
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("inspect printed %q: %v", out, err)
		}
		if got.Topic != "purchases.dlq" || got.Total != 3 || got.ByClass["permanent"] != 2 || got.ByClass["transient"] != 1 ||
			got.ByStage["clean"] != 2 || got.ByStage["sink"] != 1 || got.ByReason["amount"] != 2 || got.ByReason["timeout"] != 1 {
			t.Errorf("summary = %+v", got)
		}
		if oldest, err := time.Parse(time.RFC3339Nano, got.Oldest); err != nil || !oldest.Equal(failed) || got.OldestAge == "" {
			t.Errorf("oldest = %q (%v), age %q, want %v", got.Oldest, err, got.OldestAge, failed)
		}
		if len(got.Samples) != 2 {
			t.Fatalf("%d samples, want 2", len(got.Samples))
		}
		for _, s := range got.Samples {
			if s.Topic != "purchases.dlq" || s.Headers[wire.HeaderOriginalTopic] != "purchases" || s.Value != nil && s.Error == "" {
				t.Errorf("sample = %+v", s)
			}
		}
	})

	t.Run("replay", func(t *testing.T) {
		out, err := runCmd(t, ctx, append(append([]string{"dlq", "replay"}, common...),
			"--to", "replay.out", "--filter", "class=permanent", "--max", "1", "purchases.dlq")...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `"replayed":1`) || !strings.Contains(out, `"read":3`) {
			t.Errorf("replay printed %q", out)
		}
		out, err = runCmd(t, ctx, append(append([]string{"dlq", "replay"}, common...),
			"--to", "replay.out", "--since", failed.Add(time.Minute).Format(time.RFC3339), "purchases.dlq")...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `"replayed":2`) {
			t.Errorf("replay --since printed %q", out)
		}
		out, err = runCmd(t, ctx, append([]string{"consume", "--from-beginning", "--max", "3", "--timeout", "10s"}, append(common, "replay.out")...)...)
		if err != nil {
			t.Fatal(err)
		}
		var lines []consumed
		for l := range strings.Lines(out) {
			var c consumed
			if err := json.Unmarshal([]byte(l), &c); err != nil {
				t.Fatalf("consume printed %q: %v", l, err)
			}
			lines = append(lines, c)
		}
		if len(lines) != 3 {
			t.Fatalf("replay.out has %d records, want 3:\n%s", len(lines), out)
		}
		for _, l := range lines {
			if l.Key != "u-1" || l.Headers[wire.HeaderReplayed] != "true" || l.Headers["trace"] != "t" ||
				l.Headers[wire.HeaderError] != "" || l.Headers[wire.HeaderOriginalTopic] != "" || l.Headers[wire.HeaderAttempts] == "" {
				t.Errorf("replayed record = %+v", l)
			}
		}
	})
}
