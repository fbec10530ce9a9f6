package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/wire"
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

// fuzzCodings are the Content-Encoding values FuzzDecompress labels bodies with.
var fuzzCodings = []string{"gzip", "zstd", "x-gzip", "identity", "br", "gzip, zstd", "ZSTD", ""}

// FuzzDecompress posts arbitrary bytes, raw, compressed, or compressed and then
// corrupted, under every Content-Encoding: the answer is 202, 400, 413 or 415, never
// a 5xx or a panic, and errors are problem+json.
func FuzzDecompress(f *testing.F) {
	const limit = 64 << 10
	valid := `{"event_id":"e1","event_time":"2026-11-27T09:59:00.500Z","user_id":"u-42","session_id":"s","country":"DE","device":"mobile","order_id":"o","amount":19.99,"currency":"EUR","items":2,"product_id":"p"}`
	bomb := gzipped(f, make([]byte, 1<<20))
	zbomb := zstded(f, make([]byte, 1<<20))
	for i := range fuzzCodings {
		f.Add(uint8(i), uint8(1), uint16(0), []byte(valid))
		f.Add(uint8(i), uint8(2), uint16(7), []byte(valid+"\n"+valid))
		f.Add(uint8(i), uint8(0), uint16(0), []byte(valid))
	}
	f.Add(uint8(0), uint8(0), uint16(0), bomb)
	f.Add(uint8(1), uint8(0), uint16(0), zbomb)
	f.Add(uint8(1), uint8(0), uint16(0), []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x11, 0x00, 0x00, '{', '}'})
	f.Add(uint8(0), uint8(1), uint16(0), []byte(strings.Repeat("[", 5000)))
	f.Add(uint8(0), uint8(1), uint16(0), []byte(""))

	s := newTestServer(f, &fakeProducer{discard: true}, func(c *ingest.Config) { c.MaxBodyBytes = limit })
	h := s.App().Handler()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, coding, mode uint8, flip uint16, body []byte) {
		ce := fuzzCodings[int(coding)%len(fuzzCodings)]
		if mode%3 != 0 {
			switch strings.ToLower(ce) {
			case "gzip", "x-gzip":
				body = gzipped(t, body)
			case "zstd":
				body = enc.EncodeAll(body, nil)
			}
			if mode%3 == 2 && len(body) > 0 {
				body[int(flip)%len(body)] ^= byte(flip>>8) | 1
			}
		}
		req := &fasthttp.Request{}
		req.Header.SetMethod("POST")
		req.SetRequestURI("/api/v1/events/purchases")
		req.Header.SetContentType(fuzzContentTypes[int(mode/3)%len(fuzzContentTypes)])
		if ce != "" {
			req.Header.Set("Content-Encoding", ce)
		}
		req.SetBody(body)
		res := handle(h, req)
		switch status := res.StatusCode(); status {
		case 202, 400, 413, 415:
			if status != 202 && string(res.Header.ContentType()) != ingest.MediaTypeProblem {
				t.Fatalf("status %d with Content-Type %q", status, res.Header.ContentType())
			}
		default:
			t.Fatalf("status %d for %q body %q: %s", status, ce, body, res.Body())
		}
	})
}

// ceProducer acknowledges records and remembers the first that breaks the CloudEvents
// mapping: every record has ce_source, a ce_type that matches the topic, and an event id.
type ceProducer struct {
	mu  sync.Mutex
	bad string
}

func (p *ceProducer) Produce(_ context.Context, recs ...*kgo.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range recs {
		src, okSrc := header(r, ingest.RecordHeaderCESource)
		typ, okTyp := header(r, ingest.RecordHeaderCEType)
		id, _ := header(r, wire.HeaderEventID)
		switch {
		case !okSrc || src == "":
			p.bad = "no ce_source"
		case !okTyp || (typ != "purchases" && !strings.HasSuffix(typ, ".purchases")):
			p.bad = fmt.Sprintf("ce_type %q", typ)
		case id == "":
			p.bad = "no event id"
		}
	}
	return nil
}

func (p *ceProducer) takeBad() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	bad := p.bad
	p.bad = ""
	return bad
}

// FuzzCloudEvents posts arbitrary structured CloudEvents bodies, and arbitrary bodies
// with arbitrary ce-* headers: never a 5xx or a panic, errors are problem+json, and
// every accepted record carries a ce_type matching the topic and a ce_source.
func FuzzCloudEvents(f *testing.F) {
	valid := `{"user_id":"u-42","session_id":"s","country":"DE","device":"mobile","order_id":"o","amount":19.99,"currency":"EUR","items":2,"product_id":"p"}`
	env := `{"specversion":"1.0","id":"ce-1","source":"/shop","type":"com.shop.purchases","time":"2026-11-27T09:58:00Z","data":` + valid + `}`
	for _, seed := range []struct {
		binary, batch          bool
		body                   string
		spec, id, src, typ, tm string
	}{
		{false, false, env, "", "", "", "", ""},
		{false, true, "[" + env + "," + env + "]", "", "", "", "", ""},
		{false, true, env, "", "", "", "", ""},
		{false, false, `{"specversion":"1.0","id":"x","source":"s","type":"purchases","data_base64":"e30="}`, "", "", "", "", ""},
		{false, false, `{"specversion":1,"id":[],"source":{},"type":null,"time":"2026-13-45T99:00:00Z","datacontenttype":"text/xml","data":[]}`, "", "", "", "", ""},
		{false, false, `{"specversion":"1.0","id":"ce-1","source":"/s","type":"purchases","time":"2026-11-27T09:58:00Z","data":{"event_id":"other","event_time":1}}`, "", "", "", "", ""},
		{true, false, valid, "1.0", "ce-1", "/shop", "com.shop.purchases", "2026-11-27T09:58:00Z"},
		{true, false, valid, "1.0", "%ff", "https%3A%2F%2Fx", ".purchases", "2026-11-27T10:58:00+01:00"},
		{true, false, valid, "0.3", "", "", "clicks", "not a time"},
		{true, false, "[" + valid + "]", "1.0", "a", "b", "purchases", ""},
		{true, false, `{"event_time":"2026-11-27T09:00:00Z"}`, "1.0", "a", "b", "purchases", "2026-11-27T09:58:00Z"},
	} {
		f.Add(seed.binary, seed.batch, []byte(seed.body), seed.spec, seed.id, seed.src, seed.typ, seed.tm)
	}
	p := &ceProducer{}
	srv, err := ingest.New(ingest.Config{Topics: newTestSchemas(f).topics(), Now: fixedNow}, p)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.App().Handler()
	f.Fuzz(func(t *testing.T, binary, batch bool, body []byte, spec, id, src, typ, tm string) {
		req := &fasthttp.Request{}
		req.Header.SetMethod("POST")
		req.SetRequestURI("/api/v1/events/purchases")
		switch {
		case binary:
			req.Header.SetContentType("application/json")
			for k, v := range map[string]string{"ce-specversion": spec, "ce-id": id, "ce-source": src, "ce-type": typ, "ce-time": tm} {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
		case batch:
			req.Header.SetContentType(ingest.MediaTypeCloudEventBatch)
		default:
			req.Header.SetContentType(ingest.MediaTypeCloudEvent)
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
		if bad := p.takeBad(); bad != "" {
			t.Fatalf("accepted a record with %s (status %d, body %q)", bad, status, body)
		}
	})
}
