package gen

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf shape of user, URL and product popularity: P(rank k) is proportional to
// (zipfV + k) ** -zipfS. With the default 10000 users the hottest user sends about 2% of the
// events and the median user about 1/800 of that.
const (
	zipfS = 1.1
	zipfV = 10
)

// weighted picks an index with probability proportional to its weight.
type weighted struct{ cum []float64 }

func newWeighted(w []float64) weighted {
	cum := make([]float64, len(w))
	var sum float64
	for i, x := range w {
		sum += x
		cum[i] = sum
	}
	for i := range cum {
		cum[i] /= sum
	}
	return weighted{cum: cum}
}

// pick maps u in [0, 1) to an index.
func (w weighted) pick(u float64) int {
	i := sort.SearchFloat64s(w.cum, u)
	if i >= len(w.cum) {
		i = len(w.cum) - 1
	}
	// SearchFloat64s finds the first cum >= u; an exact hit belongs to the next bucket.
	if w.cum[i] == u && i+1 < len(w.cum) {
		i++
	}
	return i
}

// country is one shopper country with its share of traffic and its usual currency.
type country struct {
	code     string
	weight   float64
	currency string
}

// countries is the shopper mix: a western-heavy shop with a long tail.
var countries = []country{
	{"US", 24, "USD"}, {"DE", 12, "EUR"}, {"GB", 10, "GBP"}, {"FR", 8, "EUR"},
	{"JP", 6, "JPY"}, {"CA", 5, "USD"}, {"IT", 4, "EUR"}, {"ES", 4, "EUR"},
	{"NL", 4, "EUR"}, {"AU", 3, "USD"}, {"CH", 3, "CHF"}, {"BR", 3, "USD"},
	{"IN", 3, "USD"}, {"SE", 2, "EUR"}, {"PL", 2, "EUR"}, {"AT", 2, "EUR"},
	{"BE", 2, "EUR"}, {"IE", 1.5, "EUR"}, {"MX", 1.5, "USD"}, {"KR", 1, "USD"},
}

// currencies are the currencies a purchase may carry.
var currencies = []string{"EUR", "USD", "GBP", "JPY", "CHF"}

// foreignCurrencyShare is the fraction of purchases paid in a currency other than the
// shopper country's usual one (travellers, cross-border shops).
const foreignCurrencyShare = 0.05

// devices and their traffic shares.
var (
	devices       = []string{"mobile", "desktop", "tablet"}
	deviceWeights = []float64{58, 35, 7}
	// deviceWidth is the viewport width in CSS pixels, bounding click x.
	deviceWidth = map[string]int{"mobile": 414, "desktop": 1920, "tablet": 1024}
)

// mix64 is the splitmix64 finalizer: a cheap, well-spread 64-bit hash.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// hash3 combines three values into one well-spread hash.
func hash3(a, b, c uint64) uint64 {
	return mix64(mix64(mix64(a^0x9e3779b97f4a7c15)+b) + c)
}

// hashString is FNV-1a over s: stable across processes, unlike hash/maphash.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// unit maps a hash to a float64 in [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// newZipf returns a Zipf sampler of ranks 0..n-1 (n >= 1) drawing from r.
func newZipf(r *rand.Rand, n int) *rand.Zipf {
	return rand.NewZipf(r, zipfS, zipfV, uint64(n-1))
}

// logNormal draws exp(N(ln(median), sigma)): positive, right-skewed around median.
func logNormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}
