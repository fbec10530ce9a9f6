package gen

// shopHost is the origin of internal referrers.
const shopHost = "https://shop.example.com"

// headPages are the most popular pages of the shop, in popularity order; product pages
// follow them.
var headPages = []string{
	"/", "/search", "/cart", "/checkout",
	"/c/shoes", "/c/women", "/c/men", "/c/kids", "/c/sale", "/c/new-in",
	"/c/accessories", "/c/home", "/c/sports", "/c/beauty",
	"/account", "/wishlist", "/account/orders", "/help/shipping", "/help/returns", "/about",
}

// externalReferrers are the outside sites traffic arrives from.
var externalReferrers = []string{
	"https://www.google.com/", "https://www.google.com/", "https://www.google.com/",
	"https://www.bing.com/", "https://duckduckgo.com/", "https://www.facebook.com/",
	"https://www.instagram.com/", "https://t.co/", "https://www.pinterest.com/",
	"https://newsletter.example.com/weekly",
}

// productElements are clickable elements of a product page; pageElements those of
// every other page. Repeats weight the common ones.
var (
	productElements = []string{
		"add_to_cart", "add_to_cart", "add_to_cart", "product_image", "product_image",
		"size_select", "color_select", "wishlist_add", "reviews_tab", "buy_now", "nav_home",
	}
	pageElements = []string{
		"nav_home", "nav_home", "nav_category", "nav_category", "nav_category",
		"search_submit", "search_submit", "product_tile", "product_tile", "product_tile",
		"banner", "filter", "sort", "pagination", "checkout", "remove_from_cart",
		"login", "footer_link",
	}
)

// cachedURLs bounds how many URL paths a Generator keeps precomputed; rarer ones are
// built on demand, so a huge Options.URLs costs no memory.
const cachedURLs = 4096

// catalog is the shop's URL paths by popularity rank: the head pages, then product pages
// "/p/p-<k>" whose numbering matches purchases' product ids, so p-1 is the hottest
// product everywhere.
type catalog struct{ cached []string }

func newCatalog(n int) catalog {
	c := catalog{cached: make([]string, min(n, cachedURLs))}
	for i := range c.cached {
		c.cached[i] = urlPath(uint64(i))
	}
	return c
}

// at returns the path of popularity rank i.
func (c catalog) at(i uint64) string {
	if i < uint64(len(c.cached)) {
		return c.cached[i]
	}
	return urlPath(i)
}

func urlPath(i uint64) string {
	if i < uint64(len(headPages)) {
		return headPages[i]
	}
	return "/p/" + productID(i-uint64(len(headPages))+1)
}

// isProductPage reports whether path is a product page of the catalog.
func isProductPage(path string) bool {
	return len(path) > 5 && path[:5] == "/p/p-"
}
