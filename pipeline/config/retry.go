package config

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/sluicehq/sluice/pipeline/wire"
)

// Retry defaults (docs/DESIGN.md#decorators), applied by ApplyDefaults to the zero fields.
const (
	// DefaultMaxAttempts is how many deliveries of a record may fail transiently before
	// it is dead-lettered.
	DefaultMaxAttempts = 4
	// DefaultInPlaceAttempts is how many times one delivery calls the handler before the
	// record goes to a retry topic.
	DefaultInPlaceAttempts = 3
	// DefaultInPlaceBudget bounds the total in-place backoff of one delivery: the stage
	// holds its transaction meanwhile, so it stays short.
	DefaultInPlaceBudget = time.Second
	// DefaultRetryBase, DefaultRetryFactor and DefaultRetryCap shape the wait before
	// the n-th redelivery: min(base*factor^(n-1), cap), jittered.
	DefaultRetryBase   = 5 * time.Second
	DefaultRetryFactor = 2.0
	DefaultRetryCap    = 10 * time.Minute
	// DefaultRetryJitter takes up to half of each wait away at random.
	DefaultRetryJitter = 0.5
	// DefaultBreakerThreshold is how many consecutive transient failures of one
	// dependency open its circuit breaker.
	DefaultBreakerThreshold = 5
)

// DefaultRetryTiers are the delay-tier retry topics shared by the whole pipeline.
var DefaultRetryTiers = []Duration{Duration(5 * time.Second), Duration(time.Minute), Duration(10 * time.Minute)}

// Retry is how a topic's transient failures are retried.
type Retry struct {
	// MaxAttempts is how many deliveries may fail before the record is dead-lettered.
	MaxAttempts int `yaml:"max_attempts"`
	// InPlaceAttempts is how many handler calls one delivery makes (1: no in-place retry).
	InPlaceAttempts int `yaml:"in_place_attempts"`
	// InPlaceBudget bounds the total backoff of the in-place attempts.
	InPlaceBudget Duration `yaml:"in_place_budget"`
	// Base, Factor, Cap and Jitter give the wait before redelivery n:
	// min(Base*Factor^(n-1), Cap) * (1 - Jitter*rand).
	Base   Duration `yaml:"base"`
	Factor float64  `yaml:"factor"`
	Cap    Duration `yaml:"cap"`
	// Jitter is in [0, 1]; nil takes the default (0.5), 0 is no jitter.
	Jitter *float64 `yaml:"jitter"`
	// Ordered holds the partition while its head record retries, instead of sending it
	// to a retry topic: records of one key keep their order, at the cost of the whole
	// partition waiting.
	Ordered bool `yaml:"ordered"`
}

// Breaker configures the circuit breakers of the clean stage's dependencies.
type Breaker struct {
	// Threshold is how many consecutive transient failures open a breaker.
	Threshold int `yaml:"threshold"`
	// ProbeBase and ProbeCap bound the wait before each probe of an open breaker
	// (doubling, with full jitter).
	ProbeBase Duration `yaml:"probe_base"`
	ProbeCap  Duration `yaml:"probe_cap"`
}

// RetryPartitions is the partition count of the retry topics: the largest of the
// pipeline's topics, so a source partition keeps its own retry partition.
func (p *Pipeline) RetryPartitions() int32 {
	n := DefaultPartitions
	for _, t := range p.Topics {
		if t.Partitions > n {
			n = t.Partitions
		}
	}
	return n
}

func (r *Retry) applyDefaults(longestTier time.Duration) {
	if r.MaxAttempts == 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.InPlaceAttempts == 0 {
		r.InPlaceAttempts = DefaultInPlaceAttempts
	}
	if r.InPlaceBudget == 0 {
		r.InPlaceBudget = Duration(DefaultInPlaceBudget)
	}
	// The defaults fit custom tiers: no wait longer than the longest tier.
	if r.Base == 0 {
		r.Base = Duration(min(DefaultRetryBase, longestTier))
	}
	if r.Factor == 0 {
		r.Factor = DefaultRetryFactor
	}
	if r.Cap == 0 {
		r.Cap = Duration(min(DefaultRetryCap, longestTier))
	}
	if r.Jitter == nil {
		j := DefaultRetryJitter
		r.Jitter = &j
	}
}

func (b *Breaker) applyDefaults() {
	if b.Threshold == 0 {
		b.Threshold = DefaultBreakerThreshold
	}
	if b.ProbeBase == 0 {
		b.ProbeBase = Duration(time.Second)
	}
	if b.ProbeCap == 0 {
		b.ProbeCap = Duration(30 * time.Second)
	}
}

func (p *Pipeline) applyRetryDefaults() {
	if len(p.RetryTiers) == 0 {
		p.RetryTiers = append([]Duration(nil), DefaultRetryTiers...)
	}
	sort.Slice(p.RetryTiers, func(i, j int) bool { return p.RetryTiers[i] < p.RetryTiers[j] })
	longest := DefaultRetryCap
	if n := len(p.RetryTiers); n > 0 && p.RetryTiers[n-1] > 0 {
		longest = p.RetryTiers[n-1].D()
	}
	for i := range p.Topics {
		p.Topics[i].Retry.applyDefaults(longest)
	}
	p.Breaker.applyDefaults()
}

func (v *validator) retryTiers(tiers []Duration) {
	seen := map[string]bool{}
	for i, d := range tiers {
		path := fmt.Sprintf("retry_tiers[%d]", i)
		if d < Duration(time.Millisecond) {
			v.add(path, "must be >= 1ms (got %q)", d)
			continue
		}
		v.wholeMillis(path, d)
		name := wire.RetryTopic(d.D())
		if seen[name] {
			v.add(path, "duplicate tier %q", d)
		}
		seen[name] = true
	}
	if len(tiers) > 8 {
		v.add("retry_tiers", "at most 8 tiers (got %d): tiers are shared by every topic", len(tiers))
	}
}

func (v *validator) retry(path string, r *Retry) {
	if r.MaxAttempts < 1 {
		v.add(path+".max_attempts", "must be >= 1 (got %d)", r.MaxAttempts)
	}
	if r.InPlaceAttempts < 1 {
		v.add(path+".in_place_attempts", "must be >= 1 (got %d)", r.InPlaceAttempts)
	}
	if r.InPlaceBudget < 0 {
		v.add(path+".in_place_budget", "must be >= 0 (got %q)", r.InPlaceBudget)
	}
	if r.Base <= 0 {
		v.add(path+".base", "must be > 0 (got %q)", r.Base)
	}
	if !(r.Factor >= 1) || math.IsInf(r.Factor, 1) { // also NaN
		v.add(path+".factor", "must be >= 1 (got %v)", r.Factor)
	}
	if r.Cap < r.Base {
		v.add(path+".cap", "must be >= base (got %q < %q)", r.Cap, r.Base)
	}
	if r.Jitter != nil && !(*r.Jitter >= 0 && *r.Jitter <= 1) { // also NaN
		v.add(path+".jitter", "must be in [0, 1] (got %v)", *r.Jitter)
	}
}

// retryCaps checks that no topic waits longer than the longest retry tier: a longer wait
// would sit at the head of that tier and hold up every record behind it.
func (v *validator) retryCaps(p *Pipeline) {
	if len(p.RetryTiers) == 0 {
		return
	}
	longest := p.RetryTiers[0]
	for _, d := range p.RetryTiers {
		longest = max(longest, d)
	}
	for i := range p.Topics {
		if c := p.Topics[i].Retry.Cap; c > longest {
			v.add(fmt.Sprintf("topics[%d].retry.cap", i), "must be <= the longest retry tier %q (got %q)", longest, c)
		}
	}
}

func (v *validator) breaker(b *Breaker) {
	if b.Threshold < 1 {
		v.add("breaker.threshold", "must be >= 1 (got %d)", b.Threshold)
	}
	if b.ProbeBase <= 0 {
		v.add("breaker.probe_base", "must be > 0 (got %q)", b.ProbeBase)
	}
	if b.ProbeCap < b.ProbeBase {
		v.add("breaker.probe_cap", "must be >= probe_base (got %q < %q)", b.ProbeCap, b.ProbeBase)
	}
}
