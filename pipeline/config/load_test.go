package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
)

func TestDefault(t *testing.T) {
	p := config.Default()
	if err := p.Validate(); err != nil {
		t.Fatalf("built-in pipeline invalid:\n%v", err)
	}
	for _, name := range []string{"page_views", "clicks", "purchases"} {
		topic, ok := p.Topic(name)
		if !ok {
			t.Fatalf("topic %s missing", name)
		}
		if topic.Schema != name+".avsc" || topic.KeyField != "user_id" || topic.Partitions != 3 {
			t.Errorf("topic %s = schema %q key %q partitions %d", name, topic.Schema, topic.KeyField, topic.Partitions)
		}
		if len(topic.Rules) == 0 {
			t.Errorf("topic %s has no rules", name)
		}
	}
	if p.Dedup.Horizon.D() != 24*time.Hour {
		t.Errorf("dedup horizon = %s", p.Dedup.Horizon)
	}
	want := map[string]config.Window{
		"revenue_by_country_1m":    {Type: "tumbling", Size: config.Duration(time.Minute), Grace: config.Duration(5 * time.Second)},
		"views_by_url_5m_every_1m": {Type: "hopping", Size: config.Duration(5 * time.Minute), Advance: config.Duration(time.Minute), Grace: config.Duration(10 * time.Second)},
		"click_sessions":           {Type: "session", Gap: config.Duration(30 * time.Minute), Grace: config.Duration(time.Minute)},
	}
	if len(p.Aggregations) != len(want) {
		t.Fatalf("got %d aggregations, want %d", len(p.Aggregations), len(want))
	}
	for name, w := range want {
		a, ok := p.Aggregation(name)
		if !ok {
			t.Fatalf("aggregation %s missing", name)
		}
		if a.Window != w {
			t.Errorf("%s window = %+v, want %+v", name, a.Window, w)
		}
		if a.Emit != "final" {
			t.Errorf("%s emit = %q", name, a.Emit)
		}
	}
	if p.Dir != "" {
		t.Errorf("Dir = %q, want empty", p.Dir)
	}
	// Each call is a fresh copy.
	p.Topics[0].Name = "changed"
	if config.Default().Topics[0].Name == "changed" {
		t.Error("Default returned shared state")
	}
}

func TestDefaultYAMLParses(t *testing.T) {
	if _, err := config.Parse(config.DefaultYAML()); err != nil {
		t.Fatal(err)
	}
}

func TestParseAppliesDefaults(t *testing.T) {
	p, err := config.Parse([]byte(`
topics:
  - name: orders
aggregations:
  - name: orders_1m
    from: orders
    group_by: [user_id]
    window: {type: tumbling, size: 1m}
    measures: [count]
`))
	if err != nil {
		t.Fatal(err)
	}
	topic := p.Topics[0]
	if topic.Schema != "orders.avsc" || topic.KeyField != "user_id" || topic.Partitions != 3 {
		t.Errorf("topic defaults not applied: %+v", topic)
	}
	if p.Dedup.Horizon.D() != 24*time.Hour {
		t.Errorf("horizon = %s", p.Dedup.Horizon)
	}
	if p.Aggregations[0].Emit != "final" {
		t.Errorf("emit = %q", p.Aggregations[0].Emit)
	}
}

func TestParseErrors(t *testing.T) {
	const agg = `
aggregations:
  - name: a
    from: t
    group_by: [user_id]
    measures: [count]
`
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty file", ``, []string{"empty"}},
		{"typo in topic", "topics:\n  - name: t\n    partitons: 4\n", []string{"line 3", "partitons"}},
		{"typo at top", "topics: [{name: t}]\naggregation: []\n", []string{"aggregation not found"}},
		{"bad duration", "topics: [{name: t}]\ndedup: {horizon: 1 day}\n", []string{"line 2", `invalid duration "1 day"`}},
		{"bare number duration", "topics: [{name: t}]\ndedup: {horizon: 60}\n", []string{`invalid duration "60"`}},
		{"negative duration", "topics: [{name: t}]\ndedup: {horizon: -1h}\n", []string{"must not be negative"}},
		{"duration as list", "topics: [{name: t}]\ndedup: {horizon: [1h]}\n", []string{"duration must be a string"}},
		{"wrong type", "topics: [{name: t, partitions: many}]\n", []string{"line 1", "many"}},
		{"two documents", "topics: [{name: t}]\n---\ntopics: [{name: u}]\n", []string{"one YAML document"}},
		{"no topics", "dedup: {horizon: 1h}\n", []string{"topics: must list at least one topic"}},
		{"validation runs", "topics: [{name: t, partitions: -1}]\n", []string{"topics[0].partitions: must be > 0 (got -1)"}},
		{"window errors name path", "topics: [{name: t}]\n" + agg + "    window: {type: tumbling, size: 0s}\n",
			[]string{`aggregations[0].window.size: must be > 0 (got "0s")`}},
		{"syntax error", "topics: [\n", []string{"decode pipeline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Run("empty path is the built-in pipeline", func(t *testing.T) {
		p, err := config.Load("")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Topics) != 3 || p.Dir != "" {
			t.Errorf("got %d topics, Dir %q", len(p.Topics), p.Dir)
		}
	})
	t.Run("file sets absolute Dir", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "pipeline.yaml")
		if err := os.WriteFile(path, []byte("topics: [{name: t, schema: schemas/t.avsc}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if p.Dir != dir {
			t.Errorf("Dir = %q, want %q", p.Dir, dir)
		}
		if p.Topics[0].Schema != "schemas/t.avsc" {
			t.Errorf("schema = %q", p.Topics[0].Schema)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want not-exist", err)
		}
	})
	t.Run("invalid file names path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(path, []byte("topics: [{name: ''}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "topics[0].name") {
			t.Errorf("err = %v", err)
		}
	})
}
