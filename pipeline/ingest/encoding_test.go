package ingest_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

// gzipped compresses b as one gzip member.
func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstded compresses b as one zstd frame.
func zstded(t testing.TB, b []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdRawFrame builds a zstd frame by hand: no content size, no checksum, the window
// descriptor wd (window = 2^(10 + wd>>3) plus eighths), and content as one raw block.
func zstdRawFrame(wd byte, content []byte) []byte {
	n := len(content)<<3 | 1 // last block, raw
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, wd, byte(n), byte(n >> 8), byte(n >> 16)}
	return append(frame, content...)
}

// padTo pads a JSON body with trailing spaces to exactly n bytes.
func padTo(t testing.TB, body string, n int) []byte {
	t.Helper()
	if len(body) > n {
		t.Fatalf("body of %d bytes is longer than %d", len(body), n)
	}
	return []byte(body + strings.Repeat(" ", n-len(body)))
}

func TestContentEncoding(t *testing.T) {
	const limit = 4096
	one := mustJSON(t, purchase(nil))
	two := ndjson(t, purchase(map[string]any{"event_id": "a"}), purchase(map[string]any{"event_id": "b"}))
	flipLast := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[len(b)-5] ^= 0xff // inside the gzip CRC-32 trailer
		return b
	}
	tests := []struct {
		name        string
		encoding    string
		contentType string
		body        func(t *testing.T) []byte
		wantStatus  int
		wantType    string
		wantEvents  int
	}{
		{name: "no encoding", body: func(*testing.T) []byte { return []byte(one) }, wantStatus: 202, wantEvents: 1},
		{name: "identity", encoding: "identity", body: func(*testing.T) []byte { return []byte(one) }, wantStatus: 202, wantEvents: 1},
		{name: "gzip", encoding: "gzip", body: func(t *testing.T) []byte { return gzipped(t, []byte(one)) }, wantStatus: 202, wantEvents: 1},
		{name: "gzip upper case", encoding: "GZIP", body: func(t *testing.T) []byte { return gzipped(t, []byte(one)) }, wantStatus: 202, wantEvents: 1},
		{name: "x-gzip", encoding: "x-gzip", body: func(t *testing.T) []byte { return gzipped(t, []byte(one)) }, wantStatus: 202, wantEvents: 1},
		{name: "gzip with identity", encoding: "identity, gzip", body: func(t *testing.T) []byte { return gzipped(t, []byte(one)) }, wantStatus: 202, wantEvents: 1},
		{name: "gzip ndjson", encoding: "gzip", contentType: ctNDJSON, body: func(t *testing.T) []byte { return gzipped(t, []byte(two)) }, wantStatus: 202, wantEvents: 2},
		{name: "gzip multi-member", encoding: "gzip", contentType: ctNDJSON, body: func(t *testing.T) []byte {
			return append(gzipped(t, []byte(ndjson(t, purchase(map[string]any{"event_id": "a"})))),
				gzipped(t, []byte(ndjson(t, purchase(map[string]any{"event_id": "b"}))))...)
		}, wantStatus: 202, wantEvents: 2},
		{name: "zstd", encoding: "zstd", body: func(t *testing.T) []byte { return zstded(t, []byte(one)) }, wantStatus: 202, wantEvents: 1},
		{name: "zstd ndjson", encoding: "zstd", contentType: ctNDJSON, body: func(t *testing.T) []byte { return zstded(t, []byte(two)) }, wantStatus: 202, wantEvents: 2},
		{name: "gzip exactly at the limit", encoding: "gzip", body: func(t *testing.T) []byte { return gzipped(t, padTo(t, one, limit)) }, wantStatus: 202, wantEvents: 1},
		{name: "zstd exactly at the limit", encoding: "zstd", body: func(t *testing.T) []byte { return zstded(t, padTo(t, one, limit)) }, wantStatus: 202, wantEvents: 1},
		{name: "zstd 8 MiB window under a small limit", encoding: "zstd", body: func(*testing.T) []byte {
			return zstdRawFrame(13<<3, []byte(one)) // 2^23
		}, wantStatus: 202, wantEvents: 1},

		{name: "gzip one byte over the limit", encoding: "gzip", body: func(t *testing.T) []byte { return gzipped(t, padTo(t, one, limit+1)) },
			wantStatus: 413, wantType: ingest.ProblemTooLarge},
		{name: "zstd one byte over the limit", encoding: "zstd", body: func(t *testing.T) []byte { return zstded(t, padTo(t, one, limit+1)) },
			wantStatus: 413, wantType: ingest.ProblemTooLarge},
		{name: "zstd 2 GiB window", encoding: "zstd", body: func(*testing.T) []byte { return zstdRawFrame(21<<3, []byte(one)) },
			wantStatus: 413, wantType: ingest.ProblemTooLarge},

		{name: "brotli", encoding: "br", body: func(*testing.T) []byte { return []byte(one) }, wantStatus: 415, wantType: ingest.ProblemUnsupportedMediaType},
		{name: "deflate", encoding: "deflate", body: func(*testing.T) []byte { return []byte(one) }, wantStatus: 415, wantType: ingest.ProblemUnsupportedMediaType},
		{name: "two codings", encoding: "gzip, zstd", body: func(t *testing.T) []byte { return zstded(t, gzipped(t, []byte(one))) },
			wantStatus: 415, wantType: ingest.ProblemUnsupportedMediaType},

		{name: "gzip label on plain JSON", encoding: "gzip", body: func(*testing.T) []byte { return []byte(one) }, wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "gzip empty body", encoding: "gzip", body: func(*testing.T) []byte { return nil }, wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "gzip truncated", encoding: "gzip", body: func(t *testing.T) []byte { b := gzipped(t, []byte(one)); return b[:len(b)-10] },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "gzip bad checksum", encoding: "gzip", body: func(t *testing.T) []byte { return flipLast(gzipped(t, []byte(one))) },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "gzip trailing garbage", encoding: "gzip", body: func(t *testing.T) []byte { return append(gzipped(t, []byte(one)), "junk"...) },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "gzip of invalid UTF-8", encoding: "gzip", body: func(t *testing.T) []byte { return gzipped(t, []byte("{\"user_id\":\"\xff\"}")) },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "gzip of nothing", encoding: "gzip", body: func(t *testing.T) []byte { return gzipped(t, nil) }, wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "zstd label on plain JSON", encoding: "zstd", body: func(*testing.T) []byte { return []byte(one) }, wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "zstd truncated", encoding: "zstd", body: func(t *testing.T) []byte { b := zstded(t, []byte(one)); return b[:len(b)-6] },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "zstd bad checksum", encoding: "zstd", body: func(t *testing.T) []byte {
			b := zstded(t, []byte(one), zstd.WithEncoderCRC(true))
			b[len(b)-1] ^= 0xff
			return b
		}, wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "zstd empty body", encoding: "zstd", body: func(*testing.T) []byte { return nil }, wantStatus: 400, wantType: ingest.ProblemInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, func(c *ingest.Config) { c.MaxBodyBytes = limit })
			ct := tt.contentType
			if ct == "" {
				ct = ctJSON
			}
			hdr := map[string]string{}
			if tt.encoding != "" {
				hdr["Content-Encoding"] = tt.encoding
			}
			res := s.do(t, "POST", pathBuy, ct, string(tt.body(t)), hdr)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if tt.wantStatus == 202 {
				if n := len(s.producer.records()); n != tt.wantEvents {
					t.Errorf("%d records produced, want %d", n, tt.wantEvents)
				}
				return
			}
			if p := res.problem(t); p.Type != tt.wantType {
				t.Errorf("type = %q, want %q (%s)", p.Type, tt.wantType, p.Detail)
			}
			if tt.wantStatus == 415 && res.header.Get("Accept-Encoding") != "gzip, zstd, identity" {
				t.Errorf("Accept-Encoding = %q", res.header.Get("Accept-Encoding"))
			}
			if n := len(s.producer.records()); n != 0 {
				t.Errorf("%d records produced", n)
			}
		})
	}
}

// A decompression bomb (1 GiB of zeros in about 1 MB of gzip, or a few KB of zstd)
// is rejected after inflating just past the body limit: fast, and with memory bounded
// by the limit rather than by what the bomb would expand to.
func TestDecompressionBomb(t *testing.T) {
	mib := make([]byte, 1<<20)
	tests := []struct {
		name     string
		encoding string
		member   func(t *testing.T) []byte // 1 MiB of zeros, compressed
	}{
		{"gzip", "gzip", func(t *testing.T) []byte { return gzipped(t, mib) }},
		{"zstd", "zstd", func(t *testing.T) []byte { return zstded(t, mib) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil) // default limit: 10 MiB
			// Concatenated gzip members and zstd frames decode as one stream.
			bomb := bytes.Repeat(tt.member(t), 1024)
			if len(bomb) >= int(ingest.DefaultMaxBodyBytes) {
				t.Fatalf("bomb of %d bytes does not fit the raw body limit", len(bomb))
			}
			body := string(bomb)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			res := s.do(t, "POST", pathBuy, ctJSON, body, map[string]string{"Content-Encoding": tt.encoding})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if res.status != 413 {
				t.Fatalf("status = %d, want 413: %s", res.status, res.body)
			}
			if p := res.problem(t); p.Type != ingest.ProblemTooLarge {
				t.Errorf("type = %q", p.Type)
			}
			if elapsed > time.Second {
				t.Errorf("took %s to reject the bomb", elapsed)
			}
			// Inflating the whole bomb would allocate over 1 GiB; the limit allows about
			// 10 MiB of output (20 MiB with buffer growth), a 10 MiB zstd window, and
			// the request's copies of the 1 MB body.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("rejecting the bomb allocated %d MiB", alloc>>20)
			}
			t.Logf("%d byte bomb rejected in %s, %d MiB allocated", len(bomb), elapsed, (after.TotalAlloc-before.TotalAlloc)>>20)
		})
	}
}

// Hostile bodies and paths get a 4xx problem, never a 5xx or a crash.
func TestHostileRequests(t *testing.T) {
	manyEvents := "[" + strings.Repeat("{},", ingest.MaxEventsPerRequest) + "{}]"
	tests := []struct {
		name        string
		path        string
		contentType string
		encoding    string
		body        func(t *testing.T) []byte
		wantStatus  int
		wantType    string
	}{
		{name: "10k nested arrays", body: func(*testing.T) []byte { return []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)) },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "100k unclosed arrays", body: func(*testing.T) []byte { return []byte(strings.Repeat("[", 100000)) },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "10k nested objects in an event", body: func(*testing.T) []byte {
			return []byte(`{"user_id":` + strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10001))
		}, wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "nested arrays gzipped", encoding: "gzip", body: func(t *testing.T) []byte { return gzipped(t, []byte(strings.Repeat("[", 1<<20))) },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "nested arrays ndjson", contentType: ctNDJSON, body: func(*testing.T) []byte { return []byte(strings.Repeat("[", 10000) + "\n{}") },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "invalid UTF-8", body: func(*testing.T) []byte { return []byte("{\"user_id\":\"\xc3\x28\"}") },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "invalid UTF-8 ndjson", contentType: ctNDJSON, body: func(*testing.T) []byte { return []byte("{}\n{\"\xff\":1}\n") },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "UTF-16 body", body: func(*testing.T) []byte { return []byte("\xff\xfe{\x00}\x00") },
			wantStatus: 400, wantType: ingest.ProblemInvalid},
		{name: "too many events", body: func(*testing.T) []byte { return []byte(manyEvents) },
			wantStatus: 413, wantType: ingest.ProblemTooLarge},
		{name: "too many events gzipped", encoding: "gzip", body: func(t *testing.T) []byte { return gzipped(t, []byte(manyEvents)) },
			wantStatus: 413, wantType: ingest.ProblemTooLarge},
		{name: "too many ndjson lines", contentType: ctNDJSON, body: func(*testing.T) []byte {
			return []byte(strings.Repeat("{}\n", ingest.MaxEventsPerRequest+1))
		}, wantStatus: 413, wantType: ingest.ProblemTooLarge},
		{name: "encoded dot-dot slash topic", path: "/api/v1/events/..%2F..", wantStatus: 404},
		{name: "encoded dot-dot topic", path: "/api/v1/events/%2e%2e%2f%2e%2e%2fhealthz", wantStatus: 404},
		{name: "dot-dot topic", path: "/api/v1/events/../../healthz", wantStatus: 404},
		{name: "unicode topic", path: "/api/v1/events/p%C3%BCrchases", wantStatus: 404},
		{name: "invalid UTF-8 topic", path: "/api/v1/events/%ff%fe", wantStatus: 404},
		{name: "NUL in topic", path: "/api/v1/events/purchases%00", wantStatus: 404},
		{name: "300 character topic", path: "/api/v1/events/" + strings.Repeat("p", 300), wantStatus: 404},
		{name: "topic with a slash", path: "/api/v1/events/purchases/x", wantStatus: 404},
		{name: "empty topic", path: "/api/v1/events/", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			path, ct := tt.path, tt.contentType
			if path == "" {
				path = pathBuy
			}
			if ct == "" {
				ct = ctJSON
			}
			body := []byte(mustJSON(t, purchase(nil)))
			if tt.body != nil {
				body = tt.body(t)
			}
			hdr := map[string]string{}
			if tt.encoding != "" {
				hdr["Content-Encoding"] = tt.encoding
			}
			res := s.do(t, "POST", path, ct, string(body), hdr)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			p := res.problem(t)
			if tt.wantType != "" && p.Type != tt.wantType {
				t.Errorf("type = %q, want %q", p.Type, tt.wantType)
			}
			if n := len(s.producer.records()); n != 0 {
				t.Errorf("%d records produced", n)
			}
		})
	}
}

// BenchmarkIngestCompressed is BenchmarkIngestHandler's JSON array of 100 purchases sent
// gzip- and zstd-compressed and as a CloudEvents batch, to show what decompression
// (pooled decoders) and envelope unwrapping add per request.
func BenchmarkIngestCompressed(b *testing.B) {
	const batch = 100
	events := make([]any, batch)
	envelopes := make([]any, batch)
	for i := range events {
		ev := purchase(map[string]any{"event_id": nil, "user_id": fmt.Sprintf("u-%d", i), "order_id": fmt.Sprintf("o-%d", i)})
		events[i] = ev
		envelopes[i] = envelope(map[string]any{"id": fmt.Sprintf("ce-%d", i), "data": bareEvent(map[string]any{"user_id": fmt.Sprintf("u-%d", i)})})
	}
	plain := []byte(mustJSON(b, events))
	for _, bc := range []struct {
		name, contentType, encoding string
		body                        []byte
	}{
		{"identity", ctJSON, "", plain},
		{"gzip", ctJSON, "gzip", gzipped(b, plain)},
		{"zstd", ctJSON, "zstd", zstded(b, plain)},
		{"cloudevents_batch", ctCEBatch, "", []byte(mustJSON(b, envelopes))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newTestServer(b, &fakeProducer{discard: true}, nil)
			h := s.App().Handler()
			req := &fasthttp.Request{}
			req.Header.SetMethod("POST")
			req.SetRequestURI(pathBuy)
			req.Header.SetContentType(bc.contentType)
			if bc.encoding != "" {
				req.Header.Set("Content-Encoding", bc.encoding)
			}
			req.SetBody(bc.body)
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.body)))
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
