package gen

import (
	"math"
)

// Shapes of the topic-specific fields.
const (
	// Page views: 35% direct (null referrer), 35% from another shop page, 30% external.
	directShare   = 0.35
	internalShare = 0.35
	// Time on page: log-normal, median 12 s, clamped to [200 ms, 30 min].
	durationMedianMs = 12000
	durationSigma    = 1.0
	durationMinMs    = 200
	durationMaxMs    = 30 * 60 * 1000
	// Click y: half-normal with scale 700 px (most clicks above the fold), at most 5000.
	clickYScale = 700
	clickYMax   = 5000
	// Purchase amount: log-normal, median 40, in the currency's units, rounded to cents.
	amountMedian = 40
	amountSigma  = 0.75
	// Items: 1 + geometric, P(one more) = 0.45, at most 10.
	moreItems = 0.45
	maxItems  = 10
)

// pageView adds url, referrer (nil or an absolute URL) and duration_ms.
func (g *Generator) pageView(ev map[string]any, _ common) {
	ev["url"] = g.catalog.at(g.urls.Uint64())
	switch u := g.r.Float64(); {
	case u < directShare:
		ev["referrer"] = nil
	case u < directShare+internalShare:
		ev["referrer"] = shopHost + g.catalog.at(g.urls.Uint64())
	default:
		ev["referrer"] = externalReferrers[g.r.IntN(len(externalReferrers))]
	}
	d := int(logNormal(g.r, durationMedianMs, durationSigma))
	ev["duration_ms"] = min(max(d, durationMinMs), durationMaxMs)
}

// click adds url, element (product-page elements on product pages) and the x, y position
// in page pixels; x is bounded by the device's viewport width.
func (g *Generator) click(ev map[string]any, c common) {
	url := g.catalog.at(g.urls.Uint64())
	ev["url"] = url
	elems := pageElements
	if isProductPage(url) {
		elems = productElements
	}
	ev["element"] = elems[g.r.IntN(len(elems))]
	ev["x"] = g.r.IntN(deviceWidth[c.device])
	ev["y"] = min(int(math.Abs(g.r.NormFloat64())*clickYScale), clickYMax)
}

// purchase adds order_id, amount (> 0, two decimals), currency (mostly the country's),
// items (1..10) and product_id.
func (g *Generator) purchase(ev map[string]any, c common) {
	ev["order_id"] = orderID(g.r)
	ev["amount"] = max(math.Round(logNormal(g.r, amountMedian, amountSigma)*100)/100, 0.01)
	cur := c.country.currency
	if g.r.Float64() < foreignCurrencyShare {
		cur = currencies[g.r.IntN(len(currencies))]
	}
	ev["currency"] = cur
	items := 1
	for items < maxItems && g.r.Float64() < moreItems {
		items++
	}
	ev["items"] = items
	ev["product_id"] = productID(g.products.Uint64() + 1)
}
