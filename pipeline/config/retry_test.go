package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// defaultRetry is a topic's Retry after ApplyDefaults when the file sets none of it.
func defaultRetry() config.Retry {
	return config.Retry{
		MaxAttempts:     config.DefaultMaxAttempts,
		InPlaceAttempts: config.DefaultInPlaceAttempts,
		InPlaceBudget:   dur(config.DefaultInPlaceBudget),
		Base:            dur(config.DefaultRetryBase),
		Factor:          config.DefaultRetryFactor,
		Cap:             dur(config.DefaultRetryCap),
		Jitter:          ptr(config.DefaultRetryJitter),
	}
}

// sameRetry reports whether a and b are equal, comparing Jitter by value.
func sameRetry(a, b config.Retry) bool {
	if (a.Jitter == nil) != (b.Jitter == nil) || (a.Jitter != nil && *a.Jitter != *b.Jitter) {
		return false
	}
	a.Jitter, b.Jitter = nil, nil
	return a == b
}

func TestRetryDefaults(t *testing.T) {
	defaultTiers := []config.Duration{dur(5 * time.Second), dur(time.Minute), dur(10 * time.Minute)}
	defaultBreaker := config.Breaker{Threshold: 5, ProbeBase: dur(time.Second), ProbeCap: dur(30 * time.Second)}
	cases := []struct {
		name    string
		yaml    string
		tiers   []config.Duration
		retry   []config.Retry // by topic
		breaker config.Breaker
	}{
		{
			name:    "nothing set",
			yaml:    "topics: [{name: t}]\n",
			tiers:   defaultTiers,
			retry:   []config.Retry{defaultRetry()},
			breaker: defaultBreaker,
		},
		{
			name:    "empty tier list takes the defaults",
			yaml:    "topics: [{name: t}]\nretry_tiers: []\n",
			tiers:   defaultTiers,
			retry:   []config.Retry{defaultRetry()},
			breaker: defaultBreaker,
		},
		{
			name:    "tiers are sorted",
			yaml:    "topics: [{name: t}]\nretry_tiers: [2h, 250ms, 30s]\n",
			tiers:   []config.Duration{dur(250 * time.Millisecond), dur(30 * time.Second), dur(2 * time.Hour)},
			retry:   []config.Retry{defaultRetry()},
			breaker: defaultBreaker,
		},
		{
			name: "per-topic retry block",
			yaml: `
topics:
  - name: a
    retry:
      max_attempts: 2
      in_place_attempts: 1
      in_place_budget: 250ms
      base: 1s
      factor: 3
      cap: 1m
      jitter: 0
      ordered: true
  - name: b
    retry: {max_attempts: 7}
`,
			tiers: defaultTiers,
			retry: []config.Retry{
				{MaxAttempts: 2, InPlaceAttempts: 1, InPlaceBudget: dur(250 * time.Millisecond), Base: dur(time.Second),
					Factor: 3, Cap: dur(time.Minute), Jitter: ptr(0), Ordered: true},
				func() config.Retry { r := defaultRetry(); r.MaxAttempts = 7; return r }(),
			},
			breaker: defaultBreaker,
		},
		{
			name:    "full jitter kept",
			yaml:    "topics: [{name: t, retry: {jitter: 1}}]\n",
			tiers:   defaultTiers,
			retry:   []config.Retry{func() config.Retry { r := defaultRetry(); r.Jitter = ptr(1); return r }()},
			breaker: defaultBreaker,
		},
		{
			name:    "breaker partly set",
			yaml:    "topics: [{name: t}]\nbreaker: {threshold: 2, probe_cap: 1m}\n",
			tiers:   defaultTiers,
			retry:   []config.Retry{defaultRetry()},
			breaker: config.Breaker{Threshold: 2, ProbeBase: dur(time.Second), ProbeCap: dur(time.Minute)},
		},
		{
			name:    "breaker fully set",
			yaml:    "topics: [{name: t}]\nbreaker: {threshold: 1, probe_base: 2s, probe_cap: 2s}\n",
			tiers:   defaultTiers,
			retry:   []config.Retry{defaultRetry()},
			breaker: config.Breaker{Threshold: 1, ProbeBase: dur(2 * time.Second), ProbeCap: dur(2 * time.Second)},
		},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p, err := config.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.RetryTiers, tt.tiers) {
				t.Errorf("retry_tiers = %v, want %v", p.RetryTiers, tt.tiers)
			}
			if len(p.Topics) != len(tt.retry) {
				t.Fatalf("%d topics, want %d", len(p.Topics), len(tt.retry))
			}
			for i, want := range tt.retry {
				if got := p.Topics[i].Retry; !sameRetry(got, want) {
					t.Errorf("topics[%d].retry = %+v (jitter %v), want %+v (jitter %v)", i, got, deref(got.Jitter), want, deref(want.Jitter))
				}
			}
			if p.Breaker != tt.breaker {
				t.Errorf("breaker = %+v, want %+v", p.Breaker, tt.breaker)
			}
		})
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// ApplyDefaults gives each pipeline its own tier list and each topic its own jitter.
func TestRetryDefaultsNotShared(t *testing.T) {
	p := &config.Pipeline{Topics: []config.Topic{{Name: "a"}, {Name: "b"}}}
	p.ApplyDefaults()
	if err := p.Validate(); err != nil {
		t.Fatalf("hand-built pipeline after ApplyDefaults: %v", err)
	}
	p.RetryTiers[0] = dur(time.Hour)
	if config.DefaultRetryTiers[0] != dur(5*time.Second) {
		t.Errorf("DefaultRetryTiers changed through a pipeline: %v", config.DefaultRetryTiers)
	}
	*p.Topics[0].Retry.Jitter = 0.9
	if *p.Topics[1].Retry.Jitter != config.DefaultRetryJitter {
		t.Errorf("topics share one jitter value")
	}
	q := &config.Pipeline{Topics: []config.Topic{{Name: "a"}}}
	q.ApplyDefaults()
	if q.RetryTiers[0] != dur(5*time.Second) {
		t.Errorf("second pipeline's tiers = %v, want the defaults", q.RetryTiers)
	}
}

func TestRetryParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"negative max_attempts", "topics: [{name: t, retry: {max_attempts: -1}}]\n",
			[]string{"topics[0].retry.max_attempts: must be >= 1 (got -1)"}},
		{"second topic", "topics: [{name: a}, {name: b, retry: {max_attempts: -3}}]\n",
			[]string{"topics[1].retry.max_attempts: must be >= 1 (got -3)"}},
		{"negative in_place_attempts", "topics: [{name: t, retry: {in_place_attempts: -2}}]\n",
			[]string{"topics[0].retry.in_place_attempts: must be >= 1 (got -2)"}},
		{"shrinking factor", "topics: [{name: t, retry: {factor: 0.5}}]\n",
			[]string{"topics[0].retry.factor: must be >= 1 (got 0.5)"}},
		{"negative factor", "topics: [{name: t, retry: {factor: -2}}]\n",
			[]string{"topics[0].retry.factor: must be >= 1 (got -2)"}},
		{"cap below default base", "topics: [{name: t, retry: {cap: 1s}}]\n",
			[]string{`topics[0].retry.cap: must be >= base (got "1s" < "5s")`}},
		{"cap below base", "topics: [{name: t, retry: {base: 1m, cap: 30s}}]\n",
			[]string{`topics[0].retry.cap: must be >= base (got "30s" < "1m0s")`}},
		{"jitter above one", "topics: [{name: t, retry: {jitter: 1.5}}]\n",
			[]string{"topics[0].retry.jitter: must be in [0, 1] (got 1.5)"}},
		{"negative jitter", "topics: [{name: t, retry: {jitter: -0.1}}]\n",
			[]string{"topics[0].retry.jitter: must be in [0, 1] (got -0.1)"}},
		{"NaN factor", "topics: [{name: t, retry: {factor: .nan}}]\n",
			[]string{"topics[0].retry.factor: must be >= 1 (got NaN)"}},
		{"infinite factor", "topics: [{name: t, retry: {factor: .inf}}]\n",
			[]string{"topics[0].retry.factor: must be >= 1 (got +Inf)"}},
		{"NaN jitter", "topics: [{name: t, retry: {jitter: .nan}}]\n",
			[]string{"topics[0].retry.jitter: must be in [0, 1] (got NaN)"}},
		{"cap beyond the longest tier", "topics: [{name: t, retry: {cap: 1h}}]\n",
			[]string{`topics[0].retry.cap: must be <= the longest retry tier "10m0s" (got "1h0m0s")`}},
		{"negative retry duration", "topics: [{name: t, retry: {in_place_budget: -1s}}]\n",
			[]string{"must not be negative"}},
		{"unknown retry key", "topics: [{name: t, retry: {max_attempt: 2}}]\n",
			[]string{"max_attempt"}},
		{"zero tier", "topics: [{name: t}]\nretry_tiers: [5s, 0s]\n",
			[]string{`retry_tiers[0]: must be >= 1ms (got "0s")`}},
		{"sub-millisecond tier", "topics: [{name: t}]\nretry_tiers: [5s, 1500us]\n",
			[]string{`retry_tiers[0]: must be a whole number of milliseconds (got "1.5ms")`}},
		{"duplicate tier", "topics: [{name: t}]\nretry_tiers: [1m, 5s, 5000ms]\n",
			[]string{`retry_tiers[1]: duplicate tier "5s"`}},
		{"tiers with one topic name", "topics: [{name: t}]\nretry_tiers: [60s, 1m]\n",
			[]string{`retry_tiers[1]: duplicate tier "1m0s"`}},
		{"too many tiers", "topics: [{name: t}]\nretry_tiers: [1s, 2s, 3s, 4s, 5s, 6s, 7s, 8s, 9s]\n",
			[]string{"retry_tiers: at most 8 tiers (got 9)"}},
		{"tier as number", "topics: [{name: t}]\nretry_tiers: [5]\n",
			[]string{`invalid duration "5"`}},
		{"negative threshold", "topics: [{name: t}]\nbreaker: {threshold: -1}\n",
			[]string{"breaker.threshold: must be >= 1 (got -1)"}},
		{"probe cap below default", "topics: [{name: t}]\nbreaker: {probe_base: 1m}\n",
			[]string{`breaker.probe_cap: must be >= probe_base (got "30s" < "1m0s")`}},
		{"probe cap below base", "topics: [{name: t}]\nbreaker: {probe_base: 10s, probe_cap: 5s}\n",
			[]string{`breaker.probe_cap: must be >= probe_base (got "5s" < "10s")`}},
		{"unknown breaker key", "topics: [{name: t}]\nbreaker: {treshold: 3}\n",
			[]string{"treshold"}},
		{"several reported together", "topics: [{name: t, retry: {max_attempts: -1, jitter: 2}}]\nbreaker: {threshold: -4}\n",
			[]string{"topics[0].retry.max_attempts", "topics[0].retry.jitter", "breaker.threshold: must be >= 1 (got -4)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestRetryParseValid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{"one attempt", "topics: [{name: t, retry: {max_attempts: 1, in_place_attempts: 1}}]\n"},
		{"flat backoff", "topics: [{name: t, retry: {factor: 1, base: 5s, cap: 5s}}]\n"},
		{"no jitter", "topics: [{name: t, retry: {jitter: 0}}]\n"},
		{"full jitter", "topics: [{name: t, retry: {jitter: 1}}]\n"},
		{"eight tiers", "topics: [{name: t}]\nretry_tiers: [1s, 2s, 3s, 4s, 5s, 6s, 7s, 8s]\n"},
		{"millisecond tier", "topics: [{name: t}]\nretry_tiers: [1ms]\n"},
		{"probe cap equals base", "topics: [{name: t}]\nbreaker: {probe_base: 30s, probe_cap: 30s}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := config.Parse([]byte(tt.yaml)); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

// Values YAML cannot produce (negative durations, zeros after defaults) are still caught
// by Validate on a hand-built or changed pipeline.
func TestRetryValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *config.Pipeline)
		want   []string
	}{
		{"negative in-place budget", func(p *config.Pipeline) { p.Topics[2].Retry.InPlaceBudget = dur(-time.Second) },
			[]string{`topics[2].retry.in_place_budget: must be >= 0 (got "-1s")`}},
		{"zero base", func(p *config.Pipeline) { p.Topics[1].Retry.Base = 0 },
			[]string{`topics[1].retry.base: must be > 0 (got "0s")`}},
		{"zero max attempts", func(p *config.Pipeline) { p.Topics[0].Retry.MaxAttempts = 0 },
			[]string{"topics[0].retry.max_attempts: must be >= 1 (got 0)"}},
		{"zero factor", func(p *config.Pipeline) { p.Topics[0].Retry.Factor = 0 },
			[]string{"topics[0].retry.factor: must be >= 1 (got 0)"}},
		{"negative tier", func(p *config.Pipeline) { p.RetryTiers = []config.Duration{dur(time.Second), dur(-time.Second)} },
			[]string{`retry_tiers[1]: must be >= 1ms (got "-1s")`}},
		{"zero threshold", func(p *config.Pipeline) { p.Breaker.Threshold = 0 },
			[]string{"breaker.threshold: must be >= 1 (got 0)"}},
		{"zero probe base", func(p *config.Pipeline) { p.Breaker.ProbeBase = 0 },
			[]string{`breaker.probe_base: must be > 0 (got "0s")`}},
		{"no tiers is valid", func(p *config.Pipeline) { p.RetryTiers = nil }, nil},
		{"nil jitter is valid", func(p *config.Pipeline) { p.Topics[0].Retry.Jitter = nil }, nil},
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

func TestRetryTopic(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"seconds", 5 * time.Second, "_sluice.retry.5s"},
		{"one minute", time.Minute, "_sluice.retry.1m"},
		{"minutes", 10 * time.Minute, "_sluice.retry.10m"},
		{"hours", 2 * time.Hour, "_sluice.retry.2h"},
		{"milliseconds", 250 * time.Millisecond, "_sluice.retry.250ms"},
		{"seconds not a whole minute", 90 * time.Second, "_sluice.retry.90s"},
		{"minutes not a whole hour", 90 * time.Minute, "_sluice.retry.90m"},
		{"a day in hours", 24 * time.Hour, "_sluice.retry.24h"},
		{"milliseconds not a whole second", 1500 * time.Millisecond, "_sluice.retry.1500ms"},
		{"one millisecond", time.Millisecond, "_sluice.retry.1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wire.RetryTopic(tt.d); got != tt.want {
				t.Errorf("RetryTopic(%s) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
	if wire.RetryDLQTopic != "_sluice.retry.dlq" {
		t.Errorf("RetryDLQTopic = %q", wire.RetryDLQTopic)
	}
}

func TestRetryPartitions(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want int32
	}{
		{"defaults", "topics: [{name: a}, {name: b}]\n", config.DefaultPartitions},
		{"the largest topic", "topics: [{name: a, partitions: 6}, {name: b, partitions: 12}, {name: c, partitions: 3}]\n", 12},
		{"never below the default", "topics: [{name: a, partitions: 1}, {name: b, partitions: 2}]\n", config.DefaultPartitions},
		{"one large topic", "topics: [{name: a, partitions: 64}]\n", 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := config.Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.RetryPartitions(); got != tt.want {
				t.Errorf("RetryPartitions = %d, want %d", got, tt.want)
			}
		})
	}
}
