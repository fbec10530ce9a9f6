// Package rules compiles the declarative field rules of a pipeline topic and checks events
// against them. It runs once per record in the clean stage, so a passing check allocates
// nothing.
package rules

import (
	"errors"
	"fmt"
	"math"
	"regexp"

	"github.com/sluicehq/sluice/pipeline/config"
)

// Rule names reported in Violation.Rule, one per condition of config.Rule.
const (
	RuleRequired = "required"
	RuleMin      = "min"
	RuleMax      = "max"
	RuleOneOf    = "one_of"
	RuleMaxLen   = "max_len"
	RulePattern  = "pattern"
)

// Set is a compiled list of rules. The zero value and a nil *Set accept every event. A Set
// is immutable and safe for concurrent use.
type Set struct {
	rules []compiled
}

// compiled is one config.Rule ready to check.
type compiled struct {
	field    string
	required bool
	hasMin   bool
	min      float64
	hasMax   bool
	max      float64
	maxLen   int
	oneOf    map[string]struct{}
	oneOfTxt string // the allowed values, for the violation message
	pattern  *regexp.Regexp
}

// Compile checks and compiles rs. Rules are checked in the order given; within a rule the
// conditions are checked as required, min, max, max_len, one_of, pattern. A pattern is a Go
// regexp and, like regexp.MatchString, unanchored unless it says ^...$.
func Compile(rs []config.Rule) (*Set, error) {
	s := &Set{rules: make([]compiled, 0, len(rs))}
	var errs []error
	for i, r := range rs {
		c := compiled{field: r.Field, required: r.Required, maxLen: r.MaxLen}
		if r.Field == "" {
			errs = append(errs, fmt.Errorf("rules[%d].field: must not be empty", i))
		}
		if r.Min != nil {
			c.hasMin, c.min = true, *r.Min
			if math.IsNaN(c.min) {
				errs = append(errs, fmt.Errorf("rules[%d].min: must be a number (got NaN)", i))
			}
		}
		if r.Max != nil {
			c.hasMax, c.max = true, *r.Max
			if math.IsNaN(c.max) {
				errs = append(errs, fmt.Errorf("rules[%d].max: must be a number (got NaN)", i))
			}
		}
		if c.hasMin && c.hasMax && c.min > c.max {
			errs = append(errs, fmt.Errorf("rules[%d]: min must be <= max (got min %v, max %v)", i, c.min, c.max))
		}
		if r.MaxLen < 0 {
			errs = append(errs, fmt.Errorf("rules[%d].max_len: must be >= 0 (got %d)", i, r.MaxLen))
		}
		if r.OneOf != nil {
			c.oneOf = make(map[string]struct{}, len(r.OneOf))
			for _, v := range r.OneOf {
				c.oneOf[v] = struct{}{}
			}
			c.oneOfTxt = fmt.Sprintf("%q", r.OneOf)
		}
		if r.Pattern != "" {
			re, err := regexp.Compile(r.Pattern)
			if err != nil {
				errs = append(errs, fmt.Errorf("rules[%d].pattern: %w", i, err))
			}
			c.pattern = re
		}
		s.rules = append(s.rules, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Len returns the number of rules in s.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Check returns nil if event passes every rule, else a *Violation for the first rule that
// fails. Values are the Go values of decoded Avro: string, int32, int64, float32, float64,
// bool, nil, time.Time, []byte, maps and slices; a non-null union decoded as a one-key
// map {"type": value} is checked by its value. A missing key and a nil value are absent:
// only required rejects them. A condition that does not fit the value's type (min on a
// string, pattern on a number) is a violation, never a panic.
func (s *Set) Check(event map[string]any) error {
	if s == nil {
		return nil
	}
	for i := range s.rules {
		if v := s.rules[i].check(event); v != nil {
			return v
		}
	}
	return nil
}

// CheckField returns nil if v, as the value of field, passes every rule on field, else a
// *Violation for the first that fails. Rules on other fields are not checked: ingest uses
// it to refuse up front an id the clean stage would dead-letter.
func (s *Set) CheckField(field string, v any) error {
	if s == nil {
		return nil
	}
	for i := range s.rules {
		if s.rules[i].field != field {
			continue
		}
		if v := s.rules[i].checkValue(unwrapUnion(v)); v != nil {
			return v
		}
	}
	return nil
}

// check returns the violation of one rule, or nil. The passing path must not allocate.
func (c *compiled) check(event map[string]any) *Violation {
	return c.checkValue(unwrapUnion(event[c.field]))
}

// checkValue is check of the field's (unwrapped) value.
func (c *compiled) checkValue(val any) *Violation {
	if val == nil {
		if c.required {
			return c.violation(RuleRequired, "is required")
		}
		return nil
	}
	if c.required {
		if str, ok := val.(string); ok && str == "" {
			return c.violation(RuleRequired, "is required (got an empty string)")
		}
	}
	if c.hasMin || c.hasMax {
		n, ok := number(val)
		switch {
		case !ok:
			return c.violation(c.numericRule(), fmt.Sprintf("must be a number (got %s)", typeName(val)))
		case math.IsNaN(n):
			return c.violation(c.numericRule(), "must be a number (got NaN)")
		case c.hasMin && n < c.min:
			return c.violation(RuleMin, fmt.Sprintf("must be >= %s (got %s)", formatNumber(c.min), formatNumber(n)))
		case c.hasMax && n > c.max:
			return c.violation(RuleMax, fmt.Sprintf("must be <= %s (got %s)", formatNumber(c.max), formatNumber(n)))
		}
	}
	if c.maxLen > 0 {
		var l int
		switch x := val.(type) {
		case string:
			l = len(x)
		case []byte:
			l = len(x)
		default:
			return c.violation(RuleMaxLen, fmt.Sprintf("must be a string (got %s)", typeName(val)))
		}
		if l > c.maxLen {
			return c.violation(RuleMaxLen, fmt.Sprintf("must be at most %d bytes long (got %d)", c.maxLen, l))
		}
	}
	if c.oneOf != nil || c.pattern != nil {
		str, ok := val.(string)
		if !ok {
			rule := RuleOneOf
			if c.oneOf == nil {
				rule = RulePattern
			}
			return c.violation(rule, fmt.Sprintf("must be a string (got %s)", typeName(val)))
		}
		if c.oneOf != nil {
			if _, ok := c.oneOf[str]; !ok {
				return c.violation(RuleOneOf, fmt.Sprintf("must be one of %s (got %s)", c.oneOfTxt, quote(str)))
			}
		}
		if c.pattern != nil && !c.pattern.MatchString(str) {
			return c.violation(RulePattern, fmt.Sprintf("must match %s (got %s)", c.pattern, quote(str)))
		}
	}
	return nil
}

// numericRule names the condition a non-number fails: min when set, else max.
func (c *compiled) numericRule() string {
	if c.hasMin {
		return RuleMin
	}
	return RuleMax
}

func (c *compiled) violation(rule, msg string) *Violation {
	return &Violation{Field: c.field, Rule: rule, Message: msg}
}
