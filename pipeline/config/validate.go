package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline/wire"
)

// Kafka topic name limits and the names Sluice derives from the pipeline.
const (
	// maxTopicLen is Kafka's limit on a topic name.
	maxTopicLen = 249
)

// Window types.
const (
	WindowTumbling = "tumbling"
	WindowHopping  = "hopping"
	WindowSession  = "session"
)

// Validate checks the whole pipeline and returns every problem at once (errors.Join), each
// naming the field path, for example
//
//	topics[1].partitions: must be > 0 (got 0)
//	aggregations[0].window.size: must be > 0 (got "0s")
//
// It does not read schema files: whether a rule's field exists in the topic's schema is
// checked where the schema is loaded.
func (p *Pipeline) Validate() error {
	v := &validator{}
	if len(p.Topics) == 0 {
		v.add("topics", "must list at least one topic")
	}
	// owner maps every Kafka topic name the pipeline implies to the field that implies it,
	// so two entries that would write the same topic are reported.
	owner := map[string]string{}
	claim := func(path, topic string) {
		if prev, ok := owner[topic]; ok {
			v.add(path, "topic %q is also used by %s", topic, prev)
			return
		}
		owner[topic] = path
	}
	for i := range p.Topics {
		path := fmt.Sprintf("topics[%d]", i)
		t := &p.Topics[i]
		v.topic(path, t)
		if t.Name != "" {
			if _, dup := owner[t.Name]; !dup {
				for _, s := range wire.DerivedSuffixes {
					claim(path+".name", t.Name+s)
				}
			} else {
				claim(path+".name", t.Name)
			}
		}
	}
	if p.Dedup.Horizon <= 0 {
		v.add("dedup.horizon", "must be > 0 (got %q)", p.Dedup.Horizon)
	} else {
		v.wholeMillis("dedup.horizon", p.Dedup.Horizon)
	}
	v.retryTiers(p.RetryTiers)
	v.retryCaps(p)
	v.breaker(&p.Breaker)
	switch p.State.Backend {
	case "", StateBackendPebble, StateBackendMemory:
	default:
		v.add("state.backend", "must be %s or %s (got %q)", StateBackendPebble, StateBackendMemory, p.State.Backend)
	}
	for i := range p.Aggregations {
		path := fmt.Sprintf("aggregations[%d]", i)
		a := &p.Aggregations[i]
		v.aggregation(path, a, p)
		if a.Name != "" {
			claim(path+".name", wire.AggPrefix+a.Name)
		}
	}
	return errors.Join(v.errs...)
}

// validator collects problems; each is "<path>: <message>".
type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (v *validator) topic(path string, t *Topic) {
	v.topicName(path+".name", t.Name, len(wire.CleanSuffix))
	if t.Schema == "" {
		v.add(path+".schema", "must name an .avsc file")
	}
	if !isAvroName(t.KeyField) {
		v.add(path+".key_field", "must be a field name (got %q)", t.KeyField)
	}
	if t.Partitions <= 0 {
		v.add(path+".partitions", "must be > 0 (got %d)", t.Partitions)
	}
	for j := range t.Rules {
		v.rule(fmt.Sprintf("%s.rules[%d]", path, j), &t.Rules[j])
	}
	v.retry(path+".retry", &t.Retry)
	if t.Compatibility != "" && !slices.Contains(CompatibilityModes, t.Compatibility) {
		v.add(path+".compatibility", "must be one of %s (got %q)", strings.Join(CompatibilityModes, ", "), t.Compatibility)
	}
}

// topicName checks that name, and name plus a suffix of up to extra bytes, are legal Kafka
// topic names outside the reserved namespace.
func (v *validator) topicName(path, name string, extra int) {
	switch {
	case name == "":
		v.add(path, "must not be empty")
		return
	case name == "." || name == "..":
		v.add(path, "%q is not a legal Kafka topic name", name)
		return
	case len(name)+extra > maxTopicLen:
		v.add(path, "must be at most %d bytes (got %d)", maxTopicLen-extra, len(name))
	}
	if bad := strings.IndexFunc(name, func(r rune) bool { return !isTopicChar(r) }); bad >= 0 {
		v.add(path, "%q may only hold ASCII letters, digits, '.', '_' and '-'", name)
	}
	if strings.HasPrefix(name, wire.ReservedPrefix) {
		v.add(path, "%q: the prefix %q is reserved for internal topics", name, wire.ReservedPrefix)
	}
}

func isTopicChar(r rune) bool {
	return r == '.' || r == '_' || r == '-' ||
		(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

func (v *validator) rule(path string, r *Rule) {
	if !isAvroName(r.Field) {
		v.add(path+".field", "must be a field name (got %q)", r.Field)
	}
	if !r.Required && r.Min == nil && r.Max == nil && len(r.OneOf) == 0 && r.MaxLen == 0 && r.Pattern == "" {
		v.add(path, "sets no condition: want one of required, min, max, one_of, max_len, pattern")
	}
	if r.Min != nil && math.IsNaN(*r.Min) {
		v.add(path+".min", "must be a number (got NaN)")
	}
	if r.Max != nil && math.IsNaN(*r.Max) {
		v.add(path+".max", "must be a number (got NaN)")
	}
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		v.add(path, "min must be <= max (got min %v, max %v)", *r.Min, *r.Max)
	}
	if r.MaxLen < 0 {
		v.add(path+".max_len", "must be >= 0 (got %d)", r.MaxLen)
	}
	if r.Pattern != "" {
		if _, err := regexp.Compile(r.Pattern); err != nil {
			v.add(path+".pattern", "does not compile: %v", err)
		}
	}
	if r.OneOf != nil && len(r.OneOf) == 0 {
		v.add(path+".one_of", "must list at least one value")
	}
}

func (v *validator) aggregation(path string, a *Aggregation, p *Pipeline) {
	v.topicName(path+".name", a.Name, len(wire.AggPrefix))
	if _, ok := p.Topic(a.From); !ok {
		v.add(path+".from", "must name a topic of this pipeline (got %q)", a.From)
	}
	if len(a.GroupBy) == 0 {
		v.add(path+".group_by", "must list at least one field")
	}
	seen := map[string]bool{}
	for j, f := range a.GroupBy {
		fp := fmt.Sprintf("%s.group_by[%d]", path, j)
		switch {
		case !isAvroName(f):
			v.add(fp, "must be a field name (got %q)", f)
		case seen[f]:
			v.add(fp, "%q is listed twice", f)
		}
		seen[f] = true
	}
	v.window(path+".window", &a.Window)
	if len(a.Measures) == 0 {
		v.add(path+".measures", "must list at least one measure, for example [count]")
	}
	cols := map[string]bool{}
	for j, s := range a.Measures {
		mp := fmt.Sprintf("%s.measures[%d]", path, j)
		m, err := ParseMeasure(s)
		if err != nil {
			v.add(mp, "%v", err)
			continue
		}
		if cols[m.Column()] {
			v.add(mp, "%q is listed twice", m.String())
		}
		cols[m.Column()] = true
	}
	if a.Emit != EmitFinal && a.Emit != EmitUpdates {
		v.add(path+".emit", "must be %q or %q (got %q)", EmitFinal, EmitUpdates, a.Emit)
	}
	if _, _, err := a.StartTime(); err != nil {
		v.add(path+".start", "%v", err)
	}
}

func (v *validator) window(path string, w *Window) {
	// unused lists fields that a window type does not read; setting one is a mistake.
	type field struct {
		name string
		d    Duration
	}
	var unused []field
	switch w.Type {
	case WindowTumbling:
		v.positive(path+".size", w.Size)
		unused = []field{{"advance", w.Advance}, {"gap", w.Gap}}
	case WindowHopping:
		v.positive(path+".size", w.Size)
		switch {
		case w.Advance <= 0:
			v.add(path+".advance", "must be > 0 (got %q)", w.Advance)
		case w.Size > 0 && w.Advance > w.Size:
			v.add(path+".advance", "must be <= size %q (got %q)", w.Size, w.Advance)
		case w.Size > 0 && w.Size%w.Advance != 0:
			v.add(path+".size", "must be a multiple of advance %q (got %q)", w.Advance, w.Size)
		default:
			v.wholeMillis(path+".advance", w.Advance)
		}
		unused = []field{{"gap", w.Gap}}
	case WindowSession:
		v.positive(path+".gap", w.Gap)
		unused = []field{{"size", w.Size}, {"advance", w.Advance}}
	default:
		v.add(path+".type", "must be %s, %s or %s (got %q)", WindowTumbling, WindowHopping, WindowSession, w.Type)
	}
	for _, f := range unused {
		if f.d != 0 {
			v.add(path+"."+f.name, "is not used by %s windows (got %q)", w.Type, f.d)
		}
	}
	if w.Grace < 0 {
		v.add(path+".grace", "must be >= 0 (got %q)", w.Grace)
	} else {
		v.wholeMillis(path+".grace", w.Grace)
	}
}

// positive checks d > 0 and whole milliseconds.
func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.add(path, "must be > 0 (got %q)", d)
		return
	}
	v.wholeMillis(path, d)
}

// wholeMillis checks that d has no sub-millisecond part: event times are milliseconds, so
// a window of 1.5ms could not be aligned.
func (v *validator) wholeMillis(path string, d Duration) {
	if d%Duration(time.Millisecond) != 0 {
		v.add(path, "must be a whole number of milliseconds (got %q)", d)
	}
}
