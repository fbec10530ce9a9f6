package ingest

import (
	"embed"
	"mime"
	"path"

	"github.com/gofiber/fiber/v2"
)

// The interactive API reference at /docs is Swagger UI (npm swagger-ui-dist), vendored
// into docsui/ by scripts/ui/vendor.sh (`make ui-vendor`, pinned version and checksums)
// and embedded, so it works offline. Swagger UI was chosen over Redoc (no try-it-out in
// its open-source edition) and Scalar (a larger bundle that loads fonts from a CDN by
// default): it is the most used renderer, has try-it-out and an Authorize dialog for the
// bearer token, and runs under a strict Content-Security-Policy with no inline script.

//go:embed docsui/swagger-ui-bundle.js docsui/swagger-ui.css docsui/init.js
var docsAssets embed.FS

// bearerScheme is the OpenAPI security scheme of the bearer JWT.
const bearerScheme = "bearerAuth"

// docsCSP is the Content-Security-Policy of /docs and its assets: scripts and styles
// only from this server (Swagger UI sets style attributes, hence 'unsafe-inline' for
// styles, never for scripts), requests only to this server, no framing.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

var docsPage = []byte(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sluice ingest API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head><body>
<div id="swagger-ui"><p>Loading the API reference of <a href="/openapi.json">/openapi.json</a>...</p></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>
`)

func setDocsHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", docsCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
}

// docsRoutes registers GET /docs and GET /docs/<asset> (a wildcard route: the assets are
// not API operations and stay out of /openapi.json).
func (s *Server) docsRoutes() {
	s.app.Get(routeDocs, s.getDocs)
	s.app.Get(routeDocs+"/*", s.getDocsAsset)
	s.routes[routeDocs+"/*"] = true
}

// getDocsAsset is GET /docs/<asset>: one embedded file of the reference.
func (s *Server) getDocsAsset(c *fiber.Ctx) error {
	name := path.Base(c.Params("*"))
	b, err := docsAssets.ReadFile("docsui/" + name)
	if err != nil {
		return fiber.ErrNotFound
	}
	setDocsHeaders(c)
	c.Set(fiber.HeaderContentType, mime.TypeByExtension(path.Ext(name)))
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(b)
}
