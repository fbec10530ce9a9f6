package rules_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/rules"
)

func ptr(f float64) *float64 { return &f }

func compile(t testing.TB, rs ...config.Rule) *rules.Set {
	t.Helper()
	s, err := rules.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheck(t *testing.T) {
	amount := config.Rule{Field: "amount", Min: ptr(0), Max: ptr(1000000)}
	currency := config.Rule{Field: "currency", Required: true, OneOf: []string{"EUR", "USD"}}
	country := config.Rule{Field: "country", Pattern: "^[A-Z]{2}$"}
	url := config.Rule{Field: "url", Required: true, MaxLen: 10}
	tests := []struct {
		name    string
		rules   []config.Rule
		event   map[string]any
		want    *rules.Violation // nil: passes
		wantMsg string           // substring of Message
	}{
		{name: "passes", rules: []config.Rule{amount, currency, country, url},
			event: map[string]any{"amount": 19.99, "currency": "EUR", "country": "DE", "url": "/x"}},
		{name: "required missing", rules: []config.Rule{currency}, event: map[string]any{},
			want: &rules.Violation{Field: "currency", Rule: "required"}},
		{name: "required nil", rules: []config.Rule{currency}, event: map[string]any{"currency": nil},
			want: &rules.Violation{Field: "currency", Rule: "required"}},
		{name: "required empty string", rules: []config.Rule{currency}, event: map[string]any{"currency": ""},
			want: &rules.Violation{Field: "currency", Rule: "required"}, wantMsg: "empty string"},
		{name: "required zero number is present", rules: []config.Rule{{Field: "n", Required: true}}, event: map[string]any{"n": int32(0)}},
		{name: "required false is present", rules: []config.Rule{{Field: "b", Required: true}}, event: map[string]any{"b": false}},
		{name: "optional missing skips conditions", rules: []config.Rule{amount, country}, event: map[string]any{}},
		{name: "optional nil skips conditions", rules: []config.Rule{amount}, event: map[string]any{"amount": nil}},
		{name: "min", rules: []config.Rule{amount}, event: map[string]any{"amount": -0.5},
			want: &rules.Violation{Field: "amount", Rule: "min"}, wantMsg: "must be >= 0 (got -0.5)"},
		{name: "max", rules: []config.Rule{amount}, event: map[string]any{"amount": 2e6},
			want: &rules.Violation{Field: "amount", Rule: "max"}, wantMsg: "must be <= 1000000 (got 2000000)"},
		{name: "bounds inclusive", rules: []config.Rule{amount}, event: map[string]any{"amount": 1e6}},
		{name: "int32", rules: []config.Rule{{Field: "x", Min: ptr(0)}}, event: map[string]any{"x": int32(-1)},
			want: &rules.Violation{Field: "x", Rule: "min"}},
		{name: "int64", rules: []config.Rule{{Field: "x", Max: ptr(10)}}, event: map[string]any{"x": int64(11)},
			want: &rules.Violation{Field: "x", Rule: "max"}},
		{name: "float32", rules: []config.Rule{{Field: "x", Max: ptr(1)}}, event: map[string]any{"x": float32(0.5)}},
		{name: "int", rules: []config.Rule{{Field: "x", Max: ptr(1)}}, event: map[string]any{"x": 1}},
		{name: "NaN", rules: []config.Rule{amount}, event: map[string]any{"amount": math.NaN()},
			want: &rules.Violation{Field: "amount", Rule: "min"}, wantMsg: "NaN"},
		{name: "infinity", rules: []config.Rule{amount}, event: map[string]any{"amount": math.Inf(1)},
			want: &rules.Violation{Field: "amount", Rule: "max"}, wantMsg: "+Inf"},
		{name: "min on string", rules: []config.Rule{amount}, event: map[string]any{"amount": "12"},
			want: &rules.Violation{Field: "amount", Rule: "min"}, wantMsg: "must be a number (got a string)"},
		{name: "max only on bool", rules: []config.Rule{{Field: "x", Max: ptr(1)}}, event: map[string]any{"x": true},
			want: &rules.Violation{Field: "x", Rule: "max"}, wantMsg: "got a boolean"},
		{name: "min on timestamp", rules: []config.Rule{{Field: "t", Min: ptr(0)}}, event: map[string]any{"t": time.Unix(0, 0)},
			want: &rules.Violation{Field: "t", Rule: "min"}, wantMsg: "got a timestamp"},
		{name: "one_of", rules: []config.Rule{currency}, event: map[string]any{"currency": "XXX"},
			want: &rules.Violation{Field: "currency", Rule: "one_of"}, wantMsg: `must be one of ["EUR" "USD"] (got "XXX")`},
		{name: "one_of case sensitive", rules: []config.Rule{currency}, event: map[string]any{"currency": "eur"},
			want: &rules.Violation{Field: "currency", Rule: "one_of"}},
		{name: "one_of on number", rules: []config.Rule{currency}, event: map[string]any{"currency": 1.0},
			want: &rules.Violation{Field: "currency", Rule: "one_of"}, wantMsg: "must be a string (got a number)"},
		{name: "pattern", rules: []config.Rule{country}, event: map[string]any{"country": "deu"},
			want: &rules.Violation{Field: "country", Rule: "pattern"}, wantMsg: `must match ^[A-Z]{2}$ (got "deu")`},
		{name: "pattern on number", rules: []config.Rule{country}, event: map[string]any{"country": int64(49)},
			want: &rules.Violation{Field: "country", Rule: "pattern"}, wantMsg: "must be a string"},
		{name: "pattern unanchored", rules: []config.Rule{{Field: "s", Pattern: "b"}}, event: map[string]any{"s": "abc"}},
		{name: "max_len", rules: []config.Rule{url}, event: map[string]any{"url": strings.Repeat("a", 11)},
			want: &rules.Violation{Field: "url", Rule: "max_len"}, wantMsg: "at most 10 bytes long (got 11)"},
		{name: "max_len exact", rules: []config.Rule{url}, event: map[string]any{"url": strings.Repeat("a", 10)}},
		{name: "max_len counts bytes", rules: []config.Rule{url}, event: map[string]any{"url": "ääääää"},
			want: &rules.Violation{Field: "url", Rule: "max_len"}},
		{name: "max_len on bytes", rules: []config.Rule{url}, event: map[string]any{"url": []byte("short")}},
		{name: "max_len on array", rules: []config.Rule{url}, event: map[string]any{"url": []any{"a"}},
			want: &rules.Violation{Field: "url", Rule: "max_len"}, wantMsg: "got an array"},
		{name: "union value unwrapped", rules: []config.Rule{{Field: "referrer", MaxLen: 3}},
			event: map[string]any{"referrer": map[string]any{"string": "abcd"}},
			want:  &rules.Violation{Field: "referrer", Rule: "max_len"}},
		{name: "union value passes", rules: []config.Rule{{Field: "referrer", MaxLen: 3}},
			event: map[string]any{"referrer": map[string]any{"string": "abc"}}},
		{name: "record is not a string", rules: []config.Rule{{Field: "r", Pattern: "x"}},
			event: map[string]any{"r": map[string]any{"a": 1, "b": 2}},
			want:  &rules.Violation{Field: "r", Rule: "pattern"}, wantMsg: "got a record or map"},
		{name: "first violation in rule order", rules: []config.Rule{amount, currency, country},
			event: map[string]any{"amount": -1.0, "currency": "XXX", "country": "x"},
			want:  &rules.Violation{Field: "amount", Rule: "min"}},
		{name: "conditions in fixed order within a rule", rules: []config.Rule{{Field: "s", Required: true, MaxLen: 2, OneOf: []string{"a"}, Pattern: "z"}},
			event: map[string]any{"s": "bbb"},
			want:  &rules.Violation{Field: "s", Rule: "max_len"}},
		{name: "long value cut in message", rules: []config.Rule{{Field: "s", Pattern: "^x"}},
			event: map[string]any{"s": strings.Repeat("y", 1000)},
			want:  &rules.Violation{Field: "s", Rule: "pattern"}, wantMsg: `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := compile(t, tt.rules...).Check(tt.event)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want pass", err)
				}
				return
			}
			var v *rules.Violation
			if !errors.As(err, &v) {
				t.Fatalf("Check = %v (%T), want *Violation", err, err)
			}
			if v.Field != tt.want.Field || v.Rule != tt.want.Rule {
				t.Errorf("violation %s/%s, want %s/%s (%v)", v.Field, v.Rule, tt.want.Field, tt.want.Rule, v)
			}
			if !strings.Contains(v.Message, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", v.Message, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), v.Field) || !strings.Contains(err.Error(), v.Rule) {
				t.Errorf("Error() = %q does not name field and rule", err)
			}
			if len(v.Message) > 200 {
				t.Errorf("message is %d bytes long", len(v.Message))
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []config.Rule
		want  string
	}{
		{"empty field", []config.Rule{{Required: true}}, "rules[0].field: must not be empty"},
		{"bad pattern", []config.Rule{{Field: "a", Required: true}, {Field: "b", Pattern: "(("}}, "rules[1].pattern"},
		{"min above max", []config.Rule{{Field: "a", Min: ptr(2), Max: ptr(1)}}, "rules[0]: min must be <= max"},
		{"NaN", []config.Rule{{Field: "a", Min: ptr(math.NaN())}}, "rules[0].min: must be a number"},
		{"negative max_len", []config.Rule{{Field: "a", MaxLen: -3}}, "rules[0].max_len"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.Compile(tt.rules)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestEmptySets(t *testing.T) {
	var nilSet *rules.Set
	if err := nilSet.Check(map[string]any{"a": 1}); err != nil || nilSet.Len() != 0 {
		t.Errorf("nil set: %v", err)
	}
	if err := compile(t).Check(nil); err != nil {
		t.Errorf("empty set: %v", err)
	}
}

// TestDefaultPipelineRules checks the built-in rules against events shaped like the
// generator's, so a rule that would dead-letter good traffic fails here.
func TestDefaultPipelineRules(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{
			"event_id": "01JD0000000000000000000000", "event_time": time.UnixMilli(1_700_000_000_000).UTC(),
			"user_id": "u-42", "session_id": "s-1", "country": "DE", "device": "mobile",
		}
	}
	events := map[string]map[string]any{
		"page_views": {"url": "https://shop.example/p/1", "referrer": map[string]any{"string": "https://search.example/"}, "duration_ms": map[string]any{"int": int32(1200)}},
		"clicks":     {"url": "https://shop.example/p/1", "element": "add-to-cart", "x": int32(10), "y": int32(20)},
		"purchases":  {"order_id": "o-1", "amount": 19.99, "currency": "EUR", "items": int32(2), "product_id": "p-1"},
	}
	p := config.Default()
	for name, extra := range events {
		t.Run(name, func(t *testing.T) {
			topic, ok := p.Topic(name)
			if !ok {
				t.Fatal("no topic")
			}
			set := compile(t, topic.Rules...)
			ev := base()
			for k, v := range extra {
				ev[k] = v
			}
			if err := set.Check(ev); err != nil {
				t.Fatalf("good event rejected: %v", err)
			}
			ev["country"] = "Germany"
			if err := set.Check(ev); err == nil {
				t.Error("bad country accepted")
			}
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	topic, _ := config.Default().Topic("purchases")
	set := compile(b, topic.Rules...)
	ev := map[string]any{
		"event_id": "01JD0000000000000000000000", "event_time": time.UnixMilli(1_700_000_000_000),
		"user_id": "u-42", "session_id": "s-1", "country": "DE", "device": "mobile",
		"order_id": "o-1", "amount": 19.99, "currency": "EUR", "items": int32(2), "product_id": "p-1",
	}
	b.Run("pass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := set.Check(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	bad := make(map[string]any, len(ev))
	for k, v := range ev {
		bad[k] = v
	}
	bad["currency"] = "XXX"
	b.Run("violation", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := set.Check(bad); err == nil {
				b.Fatal("passed")
			}
		}
	})
}

func TestCheckPassDoesNotAllocate(t *testing.T) {
	topic, _ := config.Default().Topic("purchases")
	set := compile(t, topic.Rules...)
	ev := map[string]any{
		"event_id": "e", "user_id": "u", "country": "DE", "order_id": "o", "product_id": "p",
		"amount": 19.99, "currency": "EUR", "items": int32(2),
	}
	if n := testing.AllocsPerRun(100, func() { _ = set.Check(ev) }); n != 0 {
		t.Errorf("passing Check allocates %v times", n)
	}
}

func TestCheckField(t *testing.T) {
	s, err := rules.Compile([]config.Rule{
		{Field: "user_id", Required: true},
		{Field: "event_id", Required: true, MaxLen: 8},
		{Field: "event_id", Pattern: `^[a-z0-9-]+$`},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   string
		rule string
	}{
		{"abc-1", ""},
		{"", rules.RuleRequired},
		{"abcdefghi", rules.RuleMaxLen},
		{"ABC", rules.RulePattern},
	} {
		err := s.CheckField("event_id", c.id)
		var v *rules.Violation
		switch {
		case c.rule == "" && err != nil:
			t.Errorf("CheckField(%q) = %v, want nil (rules of other fields do not apply)", c.id, err)
		case c.rule != "" && (!errors.As(err, &v) || v.Rule != c.rule):
			t.Errorf("CheckField(%q) = %v, want a %s violation", c.id, err, c.rule)
		}
	}
}
