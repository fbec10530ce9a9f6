// Package gen generates seeded, deterministic, realistic synthetic events for the built-in
// Sluice event types (page_views, clicks, purchases: an e-commerce clickstream) and sends
// them, paced, to a Target such as the ingest REST API.
//
// Events are plain JSON-ready objects (map[string]any) exactly as a client would POST them
// to /api/v1/events/{topic}. The same Options (seed and clock included) always give the
// same events; users, URLs and products are Zipf distributed so that keys are skewed the
// way real traffic is.
package gen
