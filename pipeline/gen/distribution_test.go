package gen_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/gen"
)

const sample = 20000

// counts tallies the string values of field over events.
func counts(evs []map[string]any, field string) map[string]int {
	c := map[string]int{}
	for _, ev := range evs {
		s, _ := ev[field].(string)
		c[s]++
	}
	return c
}

// ranked returns the keys of c by descending count (ties by key) and the counts.
func ranked(c map[string]int) ([]string, []int) {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c[a] != c[b] {
			return c[b] - c[a]
		}
		return strings.Compare(a, b)
	})
	n := make([]int, len(keys))
	for i, k := range keys {
		n[i] = c[k]
	}
	return keys, n
}

func TestZipfSkew(t *testing.T) {
	tests := []struct {
		name, topic, field string
		// tops are the first ranks; one of them must be the most frequent value (the
		// head of a Zipf with v = 10 is flat: rank 2 is 90% as likely as rank 1).
		tops        []string
		minRatio    int // top count / median count of the values seen
		minTopShare float64
	}{
		{"users", gen.PageViews, "user_id", []string{"u-1", "u-2", "u-3"}, 50, 0.01},
		{"urls", gen.PageViews, "url", []string{"/", "/search", "/cart"}, 20, 0.02},
		{"products", gen.Purchases, "product_id", []string{"p-1", "p-2", "p-3"}, 20, 0.01},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(3) {
				g := mustNew(t, tc.topic, gen.Options{Seed: seed, Now: fixed(t0)})
				keys, n := ranked(counts(take(g, sample), tc.field))
				median := n[len(n)/2]
				if !slices.Contains(tc.tops, keys[0]) {
					t.Errorf("seed %d: most frequent %s is %s (%d), want one of %v", seed, tc.field, keys[0], n[0], tc.tops)
				}
				if n[0] < tc.minRatio*max(median, 1) {
					t.Errorf("seed %d: top %s %d times, median %d: not skewed", seed, tc.field, n[0], median)
				}
				if share := float64(n[0]) / sample; share < tc.minTopShare {
					t.Errorf("seed %d: top %s share %.4f < %.4f", seed, tc.field, share, tc.minTopShare)
				}
			}
		})
	}
}

func TestCountryAndDeviceMix(t *testing.T) {
	weights := map[string]float64{"US": 24, "DE": 12, "GB": 10, "FR": 8, "JP": 6, "CA": 5,
		"IT": 4, "ES": 4, "NL": 4, "AU": 3, "CH": 3, "BR": 3, "IN": 3, "SE": 2, "PL": 2,
		"AT": 2, "BE": 2, "IE": 1.5, "MX": 1.5, "KR": 1}
	var total float64
	for _, w := range weights {
		total += w
	}
	for seed := range uint64(3) {
		evs := take(mustNew(t, gen.Clicks, gen.Options{Seed: seed, Now: fixed(t0)}), sample)
		c := counts(evs, "country")
		if len(c) != len(weights) {
			t.Errorf("seed %d: %d countries, want %d: %v", seed, len(c), len(weights), c)
		}
		// Countries stick to users, and users are skewed, so allow +-50% and 1 point.
		for code, w := range weights {
			want, got := w/total, float64(c[code])/sample
			if math.Abs(got-want) > want/2+0.01 {
				t.Errorf("seed %d: %s share %.3f, want about %.3f", seed, code, got, want)
			}
		}
		if keys, _ := ranked(c); keys[0] != "US" {
			t.Errorf("seed %d: top country %s, want US", seed, keys[0])
		}
		d := counts(evs, "device")
		if !(d["mobile"] > d["desktop"] && d["desktop"] > d["tablet"] && d["tablet"] > 0) {
			t.Errorf("seed %d: device mix %v, want mobile > desktop > tablet > 0", seed, d)
		}
		if share := float64(d["mobile"]) / sample; share < 0.45 || share > 0.7 {
			t.Errorf("seed %d: mobile share %.3f, want about 0.58", seed, share)
		}
	}
}

func TestPurchaseShape(t *testing.T) {
	usual := map[string]string{"US": "USD", "CA": "USD", "AU": "USD", "BR": "USD", "IN": "USD",
		"MX": "USD", "KR": "USD", "GB": "GBP", "JP": "JPY", "CH": "CHF"}
	g := mustNew(t, gen.Purchases, gen.Options{Seed: 11, Now: fixed(t0)})
	evs := take(g, sample)
	var amounts []float64
	matching := 0
	items := map[int]int{}
	orders := map[string]bool{}
	for _, ev := range evs {
		amounts = append(amounts, ev["amount"].(float64))
		want, ok := usual[ev["country"].(string)]
		if !ok {
			want = "EUR"
		}
		if ev["currency"] == want {
			matching++
		}
		items[ev["items"].(int)]++
		orders[ev["order_id"].(string)] = true
	}
	slices.Sort(amounts)
	if med := amounts[len(amounts)/2]; med < 36 || med > 44 {
		t.Errorf("median amount %.2f, want about 40", med)
	}
	if amounts[0] <= 0 {
		t.Errorf("smallest amount %v <= 0", amounts[0])
	}
	if p99 := amounts[len(amounts)*99/100]; p99 < 100 || p99 > 400 {
		t.Errorf("p99 amount %.2f, want a long but bounded tail", p99)
	}
	if share := float64(matching) / sample; share < 0.93 || share > 0.99 {
		t.Errorf("%.3f of purchases in the country's currency, want about 0.96", share)
	}
	if !(items[1] > items[2] && items[2] > items[3] && items[10] >= 0 && len(items) >= 8) {
		t.Errorf("items distribution %v, want mostly 1, decreasing", items)
	}
	if len(orders) != sample {
		t.Errorf("%d distinct order ids in %d purchases", len(orders), sample)
	}
}

func TestPageViewShape(t *testing.T) {
	g := mustNew(t, gen.PageViews, gen.Options{Seed: 5, Now: fixed(t0)})
	evs := take(g, sample)
	direct, internal := 0, 0
	var durations []int
	for _, ev := range evs {
		switch r := ev["referrer"].(type) {
		case nil:
			direct++
		case string:
			if strings.HasPrefix(r, "https://shop.example.com/") {
				internal++
			}
		}
		durations = append(durations, ev["duration_ms"].(int))
	}
	if share := float64(direct) / sample; math.Abs(share-0.35) > 0.03 {
		t.Errorf("direct share %.3f, want about 0.35", share)
	}
	if share := float64(internal) / sample; math.Abs(share-0.35) > 0.03 {
		t.Errorf("internal referrer share %.3f, want about 0.35", share)
	}
	slices.Sort(durations)
	if med := durations[len(durations)/2]; med < 10000 || med > 14000 {
		t.Errorf("median duration %d ms, want about 12000", med)
	}
}

func TestClickShape(t *testing.T) {
	width := map[string]int{"mobile": 414, "tablet": 1024, "desktop": 1920}
	g := mustNew(t, gen.Clicks, gen.Options{Seed: 6, Now: fixed(t0)})
	onProduct := 0
	for _, ev := range take(g, sample) {
		if x := ev["x"].(int); x >= width[ev["device"].(string)] {
			t.Fatalf("x %d outside a %s viewport", x, ev["device"])
		}
		product := strings.HasPrefix(ev["url"].(string), "/p/")
		if ev["element"] == "add_to_cart" && !product {
			t.Fatalf("add_to_cart on %s", ev["url"])
		}
		if product {
			onProduct++
		}
	}
	if onProduct == 0 || onProduct == sample {
		t.Fatalf("%d of %d clicks on product pages", onProduct, sample)
	}
}
