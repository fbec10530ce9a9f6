package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-json"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o Options)
		wantErr string
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, o Options) {
			if o.Mode != ModeSingle || o.Rate != 10000 || o.Duration != 20*time.Second || o.Backend != BackendKfake {
				t.Errorf("defaults: %+v", o)
			}
			if len(o.Mix) != 3 || o.Mix[0] != (TopicWeight{"purchases", 6}) || o.eventsPerRequest() != 1 {
				t.Errorf("mix %v, per request %d", o.Mix, o.eventsPerRequest())
			}
		}},
		{name: "batch", args: []string{"--mode", "batch", "--batch-size", "100", "--rate", "100000", "--duration", "5s"},
			check: func(t *testing.T, o Options) {
				if o.eventsPerRequest() != 100 || o.Rate != 100000 || o.Duration != 5*time.Second {
					t.Errorf("batch: %+v", o)
				}
			}},
		{name: "mix without weight", args: []string{"--mix", "clicks,purchases=2,page_views=0"},
			check: func(t *testing.T, o Options) {
				want := []TopicWeight{{"clicks", 1}, {"purchases", 2}}
				if len(o.Mix) != 2 || o.Mix[0] != want[0] || o.Mix[1] != want[1] {
					t.Errorf("mix = %v, want %v", o.Mix, want)
				}
			}},
		{name: "steps", args: []string{"--step", "10000:50000:20000"}, check: func(t *testing.T, o Options) {
			got := o.Step.Rates()
			if len(got) != 3 || got[0] != 10000 || got[2] != 50000 {
				t.Errorf("rates = %v", got)
			}
		}},
		{name: "external", args: []string{"--backend", "external", "--brokers", "a:9092,b:9092"}, check: func(t *testing.T, o Options) {
			if len(o.Brokers) != 2 || o.Brokers[1] != "b:9092" {
				t.Errorf("brokers = %v", o.Brokers)
			}
		}},
		{name: "clean only", args: []string{"--clean-only"}, check: func(t *testing.T, o Options) {
			if !o.CleanOnly {
				t.Errorf("CleanOnly = false")
			}
		}},
		{name: "clean only with target", args: []string{"--clean-only", "--target", "http://x"}, wantErr: "--clean-only: not with --target"},
		{name: "bad mode", args: []string{"--mode", "stream"}, wantErr: "--mode: want single, batch or ndjson"},
		{name: "bad rate", args: []string{"--rate", "0"}, wantErr: "--rate: must be > 0"},
		{name: "short duration", args: []string{"--duration", "10ms"}, wantErr: "--duration: must be in [1s, 1h]"},
		{name: "unknown topic", args: []string{"--mix", "orders=1"}, wantErr: `--mix: unknown topic "orders"`},
		{name: "bad weight", args: []string{"--mix", "clicks=x"}, wantErr: `--mix: weight of "clicks"`},
		{name: "twice", args: []string{"--mix", "clicks=1,clicks=2"}, wantErr: `given twice`},
		{name: "empty mix", args: []string{"--mix", "clicks=0"}, wantErr: "needs at least one topic"},
		{name: "external without brokers", args: []string{"--backend", "external"}, wantErr: "--brokers: needed"},
		{name: "bad target", args: []string{"--target", "ftp://x"}, wantErr: "--target: want an http(s) URL"},
		{name: "bare with target", args: []string{"--target", "http://x:8080", "--bare"}, wantErr: "--bare: not with --target"},
		{name: "step shape", args: []string{"--step", "10000:20000"}, wantErr: "--step: want from:to:by"},
		{name: "step order", args: []string{"--step", "20000:10000:1000"}, wantErr: "below from"},
		{name: "too many steps", args: []string{"--step", "1:1000:1"}, wantErr: "at most 50"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseOptions(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestBodiesAreValidAndAnonymous(t *testing.T) {
	for _, mode := range []string{ModeSingle, ModeBatch, ModeNDJSON} {
		t.Run(mode, func(t *testing.T) {
			o, err := parseOptions([]string{"--mode", mode, "--batch-size", "3"}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			b, err := newBodies(o)
			if err != nil {
				t.Fatal(err)
			}
			body := b.bodies[0][0]
			var evs []map[string]any
			switch mode {
			case ModeSingle:
				var ev map[string]any
				err = json.Unmarshal(body, &ev)
				evs = append(evs, ev)
			case ModeBatch:
				err = json.Unmarshal(body, &evs)
			default:
				for line := range strings.Lines(string(body)) {
					var ev map[string]any
					if err = json.Unmarshal([]byte(line), &ev); err != nil {
						break
					}
					evs = append(evs, ev)
				}
			}
			if err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if len(evs) != o.eventsPerRequest() {
				t.Fatalf("%d events, want %d", len(evs), o.eventsPerRequest())
			}
			for _, ev := range evs {
				if _, ok := ev["event_id"]; ok {
					t.Errorf("event has an event_id (a reused body would be a duplicate): %v", ev)
				}
				if ev["user_id"] == nil {
					t.Errorf("event without user_id: %v", ev)
				}
			}
		})
	}
}

func TestOutput(t *testing.T) {
	r := Result{Mode: ModeBatch, BatchSize: 100, Backend: BackendKfake, OfferedRate: 1000, AchievedRate: 990,
		Requests: 10, Offered: 1000, Accepted: 1000, Clean: 1000, HTTPP50: 1, HTTPP95: 2, HTTPP99: 3,
		E2EMeasured: true, E2EP50: 4, E2EP95: 8, E2EP99: 12, E2EMax: 20, ServerCPUSeconds: 0.5}
	out := Output{Result: r, SLOms: 100}
	out.withBare(BareResult{OfferedRate: 1000, P50: 1, P95: 2, P99: 3})
	var buf bytes.Buffer
	if err := writeJSON(&buf, out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	for _, k := range []string{"offered_rate", "achieved_rate", "errors", "http_p50_ms", "http_p95_ms", "http_p99_ms",
		"e2e_p50_ms", "e2e_p95_ms", "e2e_p99_ms", "e2e_max_ms", "server_cpu_seconds"} {
		if _, ok := got[k]; !ok {
			t.Errorf("JSON lacks %s: %s", k, buf.Bytes())
		}
	}
	if got["e2e_p95_over_bare"] != 4.0 || got["e2e_p99_over_bare"] != 4.0 {
		t.Errorf("ratios: %v %v", got["e2e_p95_over_bare"], got["e2e_p99_over_bare"])
	}
	buf.Reset()
	if err := writeMarkdown(&buf, out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "| pipeline | batch x100 | 1000 | 990 | 0 |") || !strings.Contains(buf.String(), "| bare franz-go |") {
		t.Errorf("markdown:\n%s", buf.String())
	}
}

func TestSustained(t *testing.T) {
	base := Result{OfferedRate: 1000, AchievedRate: 1000, Requests: 100, Offered: 1000, Accepted: 1000, Clean: 1000,
		E2EMeasured: true, E2EP95: 50}
	tests := []struct {
		name string
		edit func(*Result)
		want bool
	}{
		{"kept up", func(*Result) {}, true},
		{"behind", func(r *Result) { r.AchievedRate = 940 }, false},
		{"errors", func(r *Result) { r.Errors = 2 }, false},
		{"slow", func(r *Result) { r.E2EP95 = 100 }, false},
		{"lost", func(r *Result) { r.Clean = 900 }, false},
		{"not measured", func(r *Result) { r.E2EMeasured, r.E2EP95 = false, -1 }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.edit(&r)
			if got := sustained(r, 100*time.Millisecond); got != tc.want {
				t.Errorf("sustained = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlot(t *testing.T) {
	tl := NewTimeline(time.Unix(100, 0))
	for i := range 5 {
		at := time.Unix(100+int64(i), 0)
		tl.AddHTTP(at, time.Duration(i+1)*time.Millisecond, 10, true)
		tl.AddE2E(at, time.Duration(i+2)*time.Millisecond)
	}
	var buf bytes.Buffer
	if err := writePlot(&buf, "a <test>", tl.Seconds()); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	if !strings.HasPrefix(s, "<svg") || !strings.Contains(s, "a &lt;test&gt;") || strings.Count(s, "<polyline") < 6 || strings.Contains(s, "NaN") {
		t.Errorf("svg:\n%s", s)
	}
}
