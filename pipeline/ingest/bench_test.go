package ingest_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkIngestHandler measures one POST of a batch of 100 purchases through the
// fiber handler (routing, decoding, validation, Avro encoding, record building) with a
// producer that acknowledges at once; no network.
func BenchmarkIngestHandler(b *testing.B) {
	const batch = 100
	for _, bc := range []struct {
		name, contentType, sep, open, close string
	}{
		{"json_array", ctJSON, ",", "[", "]"},
		{"ndjson", ctNDJSON, "\n", "", "\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			events := make([]string, batch)
			for i := range events {
				events[i] = mustJSON(b, purchase(map[string]any{
					"event_id": nil, "user_id": fmt.Sprintf("u-%d", i), "order_id": fmt.Sprintf("o-%d", i),
				}))
			}
			body := []byte(bc.open + strings.Join(events, bc.sep) + bc.close)
			s := newTestServer(b, &fakeProducer{discard: true}, nil)
			h := s.App().Handler()
			req := &fasthttp.Request{}
			req.Header.SetMethod("POST")
			req.SetRequestURI(pathBuy)
			req.Header.SetContentType(bc.contentType)
			req.SetBody(body)
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				ctx.Init(req, nil, nil)
				h(&ctx)
				if ctx.Response.StatusCode() != 202 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
