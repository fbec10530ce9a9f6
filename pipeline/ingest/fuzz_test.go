package ingest_test

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

// handle runs one request through the fiber handler without a network connection.
func handle(h fasthttp.RequestHandler, req *fasthttp.Request) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Init(req, nil, nil)
	h(&ctx)
	res := &fasthttp.Response{}
	ctx.Response.CopyTo(res)
	return res
}

var fuzzContentTypes = []string{"application/json", "application/x-ndjson", "application/json; charset=utf-8", "text/plain"}

// FuzzPostEvents posts arbitrary bodies with every content type: the answer must never
// be a 5xx (bad input is always the client's fault) and errors must be problem+json.
func FuzzPostEvents(f *testing.F) {
	valid := `{"event_id":"e1","event_time":"2026-11-27T09:59:00.500Z","user_id":"u-42","session_id":"s","country":"DE","device":"mobile","order_id":"o","amount":19.99,"currency":"EUR","items":2,"product_id":"p"}`
	seeds := []string{
		valid, "[" + valid + "," + valid + "]", valid + "\n" + valid + "\n", "", "[]", "{}", "null", "[1,{}]",
		`{"event_id":7}`, `{"user_id":""}`, `{"amount":1e400}`, `{"items":12345678901234567890}`,
		`{"event_time":"9999-12-31T23:59:59Z"}`, `{"event_time":-99999999999999999}`, "{\"a\":\"\xff\"}",
		strings.Repeat("[", 12000), "{\"" + strings.Repeat("\xae", 1100), `{"device":"watch","user_id":{"x":1}}`, "\n\n{}\n{", `{"a":1}}`,
	}
	for i, s := range seeds {
		for ct := range fuzzContentTypes {
			f.Add(uint8(ct), i%3 == 0, []byte(s))
		}
	}
	s := newTestServer(f, &fakeProducer{discard: true}, nil)
	h := s.App().Handler()
	f.Fuzz(func(t *testing.T, ct uint8, idem bool, body []byte) {
		req := &fasthttp.Request{}
		req.Header.SetMethod("POST")
		req.SetRequestURI("/api/v1/events/purchases")
		req.Header.SetContentType(fuzzContentTypes[int(ct)%len(fuzzContentTypes)])
		if idem {
			req.Header.Set(ingest.HeaderIdempotencyKey, "fuzz-key")
		}
		req.SetBody(body)
		res := handle(h, req)
		status := res.StatusCode()
		if status >= 500 {
			t.Fatalf("status %d for body %q: %s", status, body, res.Body())
		}
		if status != 202 && string(res.Header.ContentType()) != ingest.MediaTypeProblem {
			t.Fatalf("status %d with Content-Type %q", status, res.Header.ContentType())
		}
	})
}
