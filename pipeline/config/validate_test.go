package config_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
)

func ptr(f float64) *float64 { return &f }

func dur(d time.Duration) config.Duration { return config.Duration(d) }

func TestValidate(t *testing.T) {
	// Indices into the built-in pipeline: topics 0 page_views, 1 clicks, 2 purchases;
	// aggregations 0 tumbling, 1 hopping, 2 session.
	tests := []struct {
		name   string
		change func(p *config.Pipeline)
		want   []string // every substring must appear; nil means valid
	}{
		{"built-in is valid", func(p *config.Pipeline) {}, nil},
		{"no topics", func(p *config.Pipeline) { p.Topics = nil; p.Aggregations = nil },
			[]string{"topics: must list at least one topic"}},
		{"empty topic name", func(p *config.Pipeline) { p.Topics[1].Name = "" },
			[]string{"topics[1].name: must not be empty", `aggregations[2].from: must name a topic of this pipeline (got "clicks")`}},
		{"duplicate topic", func(p *config.Pipeline) { p.Topics[1].Name = "page_views" },
			[]string{`topics[1].name: topic "page_views" is also used by topics[0].name`}},
		{"topic collides with derived", func(p *config.Pipeline) { p.Topics[1].Name = "page_views.dlq" },
			[]string{`topics[1].name: topic "page_views.dlq" is also used by topics[0].name`}},
		{"topic collides with aggregation output", func(p *config.Pipeline) {
			p.Topics[1].Name = "agg.click_sessions"
			p.Aggregations[2].From = "agg.click_sessions"
		},
			[]string{`aggregations[2].name: topic "agg.click_sessions" is also used by topics[1].name`}},
		{"illegal topic chars", func(p *config.Pipeline) { p.Topics[0].Name = "page views" },
			[]string{`topics[0].name: "page views" may only hold`}},
		{"dot topic", func(p *config.Pipeline) { p.Topics[0].Name = ".." },
			[]string{`topics[0].name: ".." is not a legal Kafka topic name`}},
		{"reserved prefix", func(p *config.Pipeline) { p.Topics[0].Name = "_sluice.x" },
			[]string{`topics[0].name: "_sluice.x": the prefix "_sluice" is reserved`}},
		{"topic too long for derived names", func(p *config.Pipeline) { p.Topics[0].Name = strings.Repeat("a", 244) },
			[]string{"topics[0].name: must be at most 243 bytes (got 244)"}},
		{"zero partitions", func(p *config.Pipeline) { p.Topics[1].Partitions = 0 },
			[]string{"topics[1].partitions: must be > 0 (got 0)"}},
		{"empty schema", func(p *config.Pipeline) { p.Topics[2].Schema = "" },
			[]string{"topics[2].schema: must name an .avsc file"}},
		{"bad key field", func(p *config.Pipeline) { p.Topics[2].KeyField = "user id" },
			[]string{`topics[2].key_field: must be a field name (got "user id")`}},
		{"rule without field", func(p *config.Pipeline) { p.Topics[2].Rules[0].Field = "" },
			[]string{`topics[2].rules[0].field: must be a field name (got "")`}},
		{"rule without condition", func(p *config.Pipeline) { p.Topics[2].Rules = []config.Rule{{Field: "amount"}} },
			[]string{"topics[2].rules[0]: sets no condition"}},
		{"min above max", func(p *config.Pipeline) {
			p.Topics[2].Rules = []config.Rule{{Field: "amount", Min: ptr(10), Max: ptr(1)}}
		},
			[]string{"topics[2].rules[0]: min must be <= max (got min 10, max 1)"}},
		{"NaN bound", func(p *config.Pipeline) { p.Topics[2].Rules = []config.Rule{{Field: "amount", Max: ptr(math.NaN())}} },
			[]string{"topics[2].rules[0].max: must be a number (got NaN)"}},
		{"bad pattern", func(p *config.Pipeline) { p.Topics[0].Rules = []config.Rule{{Field: "country", Pattern: "[A-Z"}} },
			[]string{"topics[0].rules[0].pattern: does not compile"}},
		{"negative max_len", func(p *config.Pipeline) {
			p.Topics[0].Rules = []config.Rule{{Field: "url", Required: true, MaxLen: -1}}
		},
			[]string{"topics[0].rules[0].max_len: must be >= 0 (got -1)"}},
		{"empty one_of", func(p *config.Pipeline) { p.Topics[0].Rules = []config.Rule{{Field: "device", OneOf: []string{}}} },
			[]string{"topics[0].rules[0].one_of: must list at least one value"}},
		{"zero horizon", func(p *config.Pipeline) { p.Dedup.Horizon = 0 },
			[]string{`dedup.horizon: must be > 0 (got "0s")`}},
		{"aggregation from unknown topic", func(p *config.Pipeline) { p.Aggregations[0].From = "orders" },
			[]string{`aggregations[0].from: must name a topic of this pipeline (got "orders")`}},
		{"duplicate aggregation", func(p *config.Pipeline) { p.Aggregations[1].Name = p.Aggregations[0].Name },
			[]string{`aggregations[1].name: topic "agg.revenue_by_country_1m" is also used by aggregations[0].name`}},
		{"empty aggregation name", func(p *config.Pipeline) { p.Aggregations[1].Name = "" },
			[]string{"aggregations[1].name: must not be empty"}},
		{"empty group_by", func(p *config.Pipeline) { p.Aggregations[0].GroupBy = nil },
			[]string{"aggregations[0].group_by: must list at least one field"}},
		{"duplicate group_by", func(p *config.Pipeline) { p.Aggregations[0].GroupBy = []string{"country", "country"} },
			[]string{`aggregations[0].group_by[1]: "country" is listed twice`}},
		{"unknown window type", func(p *config.Pipeline) { p.Aggregations[0].Window.Type = "sliding" },
			[]string{`aggregations[0].window.type: must be tumbling, hopping or session (got "sliding")`}},
		{"tumbling zero size", func(p *config.Pipeline) { p.Aggregations[0].Window.Size = 0 },
			[]string{`aggregations[0].window.size: must be > 0 (got "0s")`}},
		{"tumbling with gap", func(p *config.Pipeline) { p.Aggregations[0].Window.Gap = dur(time.Minute) },
			[]string{`aggregations[0].window.gap: is not used by tumbling windows (got "1m0s")`}},
		{"sub-millisecond size", func(p *config.Pipeline) { p.Aggregations[0].Window.Size = dur(1500 * time.Microsecond) },
			[]string{`aggregations[0].window.size: must be a whole number of milliseconds (got "1.5ms")`}},
		{"negative grace", func(p *config.Pipeline) { p.Aggregations[0].Window.Grace = dur(-time.Second) },
			[]string{`aggregations[0].window.grace: must be >= 0 (got "-1s")`}},
		{"hopping zero advance", func(p *config.Pipeline) { p.Aggregations[1].Window.Advance = 0 },
			[]string{`aggregations[1].window.advance: must be > 0 (got "0s")`}},
		{"hopping advance above size", func(p *config.Pipeline) { p.Aggregations[1].Window.Advance = dur(10 * time.Minute) },
			[]string{`aggregations[1].window.advance: must be <= size "5m0s" (got "10m0s")`}},
		{"hopping size not multiple", func(p *config.Pipeline) { p.Aggregations[1].Window.Advance = dur(2 * time.Minute) },
			[]string{`aggregations[1].window.size: must be a multiple of advance "2m0s" (got "5m0s")`}},
		{"hopping zero size", func(p *config.Pipeline) { p.Aggregations[1].Window.Size = 0 },
			[]string{`aggregations[1].window.size: must be > 0 (got "0s")`}},
		{"session zero gap", func(p *config.Pipeline) { p.Aggregations[2].Window.Gap = 0 },
			[]string{`aggregations[2].window.gap: must be > 0 (got "0s")`}},
		{"session with size", func(p *config.Pipeline) { p.Aggregations[2].Window.Size = dur(time.Minute) },
			[]string{`aggregations[2].window.size: is not used by session windows`}},
		{"no measures", func(p *config.Pipeline) { p.Aggregations[0].Measures = nil },
			[]string{"aggregations[0].measures: must list at least one measure"}},
		{"bad measure", func(p *config.Pipeline) { p.Aggregations[0].Measures = []string{"count", "median(amount)"} },
			[]string{`aggregations[0].measures[1]: unknown measure function "median"`}},
		{"duplicate measure", func(p *config.Pipeline) { p.Aggregations[0].Measures = []string{"sum(amount)", "sum( amount )"} },
			[]string{`aggregations[0].measures[1]: "sum(amount)" is listed twice`}},
		{"bad emit", func(p *config.Pipeline) { p.Aggregations[0].Emit = "always" },
			[]string{`aggregations[0].emit: must be "final" or "updates" (got "always")`}},
		{"updates emit is valid", func(p *config.Pipeline) { p.Aggregations[0].Emit = "updates" }, nil},
		{"bad start", func(p *config.Pipeline) { p.Aggregations[0].Start = "yesterday" },
			[]string{`aggregations[0].start: want earliest, latest or an RFC 3339 time (got "yesterday")`}},
		{"start latest is valid", func(p *config.Pipeline) { p.Aggregations[0].Start = "latest" }, nil},
		{"start at a time is valid", func(p *config.Pipeline) { p.Aggregations[0].Start = "2026-11-01T10:00:00Z" }, nil},
		{"several problems reported together", func(p *config.Pipeline) {
			p.Topics[0].Partitions = -2
			p.Aggregations[2].Window.Gap = 0
		}, []string{"topics[0].partitions: must be > 0 (got -2)", "aggregations[2].window.gap: must be > 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := config.Default()
			tt.change(p)
			err := p.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestParseMeasure(t *testing.T) {
	tests := []struct {
		in      string
		want    config.Measure
		wantCol string
		wantErr string
	}{
		{in: "count", want: config.Measure{Func: "count"}, wantCol: "count"},
		{in: " count ", want: config.Measure{Func: "count"}, wantCol: "count"},
		{in: "count_distinct(user_id)", want: config.Measure{Func: "count_distinct", Field: "user_id"}, wantCol: "count_distinct_user_id"},
		{in: "sum(amount)", want: config.Measure{Func: "sum", Field: "amount"}, wantCol: "sum_amount"},
		{in: "avg( amount )", want: config.Measure{Func: "avg", Field: "amount"}, wantCol: "avg_amount"},
		{in: "min(amount)", want: config.Measure{Func: "min", Field: "amount"}, wantCol: "min_amount"},
		{in: "max(amount)", want: config.Measure{Func: "max", Field: "amount"}, wantCol: "max_amount"},
		{in: "count(amount)", wantErr: "count takes no field"},
		{in: "sum()", wantErr: "is not a field name"},
		{in: "sum(a b)", wantErr: "is not a field name"},
		{in: "sum(amount", wantErr: "unknown measure"},
		{in: "total", wantErr: "unknown measure"},
		{in: "median(x)", wantErr: "unknown measure function"},
		{in: "", wantErr: "unknown measure"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := config.ParseMeasure(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m != tt.want || m.Column() != tt.wantCol {
				t.Errorf("got %+v column %q, want %+v column %q", m, m.Column(), tt.want, tt.wantCol)
			}
		})
	}
}

func TestParsedMeasures(t *testing.T) {
	a, _ := config.Default().Aggregation("revenue_by_country_1m")
	ms, err := a.ParsedMeasures()
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, m := range ms {
		cols = append(cols, m.Column())
	}
	if got := strings.Join(cols, ","); got != "count,sum_amount,avg_amount,min_amount,max_amount" {
		t.Errorf("columns = %s", got)
	}
}
