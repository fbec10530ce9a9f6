package rules_test

import (
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
)

// FuzzCheck feeds arbitrary field values to the built-in purchases rules: Check must never
// panic, and a violation must name a field and a rule.
func FuzzCheck(f *testing.F) {
	f.Add("EUR", "DE", 19.99, int64(2), true)
	f.Add("", "", -1.0, int64(-1), false)
	f.Add("\xff\xfe", "D\x00", 1e308, int64(1)<<62, true)
	topic, _ := config.Default().Topic("purchases")
	set := compile(f, topic.Rules...)
	f.Fuzz(func(t *testing.T, s, country string, amount float64, items int64, typesSwapped bool) {
		ev := map[string]any{
			"event_id": s, "user_id": s, "order_id": s, "product_id": s,
			"currency": s, "country": country, "amount": amount, "items": items,
		}
		if typesSwapped {
			ev["amount"], ev["currency"] = s, amount
			ev["country"] = map[string]any{"string": country}
		}
		if err := set.Check(ev); err != nil && err.Error() == "" {
			t.Fatal("empty violation")
		}
	})
}
