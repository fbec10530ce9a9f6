package ingest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

const (
	ctCE      = ingest.MediaTypeCloudEvent
	ctCEBatch = ingest.MediaTypeCloudEventBatch
)

// ceTime is the time attribute of the test CloudEvents.
var ceTime = time.Date(2026, 11, 27, 9, 58, 0, 250_000_000, time.UTC)

// bareEvent is a valid purchase without event_id and event_time, which the CloudEvent
// supplies; edits work as for purchase.
func bareEvent(edits map[string]any) map[string]any {
	ev := purchase(map[string]any{"event_id": nil, "event_time": nil})
	for k, v := range edits {
		if v == nil {
			delete(ev, k)
			continue
		}
		ev[k] = v
	}
	return ev
}

// envelope is a valid structured-mode CloudEvent for purchases with attributes
// overridden or removed (nil value) by edits.
func envelope(edits map[string]any) map[string]any {
	ce := map[string]any{
		"specversion":     "1.0",
		"id":              "ce-1",
		"source":          "/shop/checkout",
		"type":            "com.shop.purchases",
		"time":            ceTime.Format(time.RFC3339Nano),
		"datacontenttype": "application/json",
		"data":            bareEvent(nil),
	}
	for k, v := range edits {
		if v == nil {
			delete(ce, k)
			continue
		}
		ce[k] = v
	}
	return ce
}

// binaryHeaders are the ce-* headers of a valid binary-mode CloudEvent, edited like
// envelope ("" removes a header).
func binaryHeaders(edits map[string]string) map[string]string {
	h := map[string]string{
		"ce-specversion": "1.0",
		"ce-id":          "ce-1",
		"ce-source":      "/shop/checkout",
		"ce-type":        "com.shop.purchases",
		"ce-time":        ceTime.Format(time.RFC3339Nano),
	}
	for k, v := range edits {
		if v == "" {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	return h
}

func TestCloudEventsAccepted(t *testing.T) {
	type want struct {
		id     string
		time   time.Time
		source string
		typ    string
	}
	one := []want{{"ce-1", ceTime, "/shop/checkout", "com.shop.purchases"}}
	tests := []struct {
		name        string
		contentType string
		body        func(t *testing.T) string
		header      map[string]string
		want        []want
		wantHeader  map[string]string // further record headers
	}{
		{name: "structured", contentType: ctCE, body: func(t *testing.T) string { return mustJSON(t, envelope(nil)) }, want: one},
		{name: "structured with charset", contentType: ctCE + "; charset=utf-8",
			body: func(t *testing.T) string { return mustJSON(t, envelope(nil)) }, want: one},
		{name: "type equal to the topic", contentType: ctCE,
			body: func(t *testing.T) string { return mustJSON(t, envelope(map[string]any{"type": "purchases"})) },
			want: []want{{"ce-1", ceTime, "/shop/checkout", "purchases"}}},
		{name: "no time: receive time", contentType: ctCE,
			body: func(t *testing.T) string { return mustJSON(t, envelope(map[string]any{"time": nil})) },
			want: []want{{"ce-1", receiveTime, "/shop/checkout", "com.shop.purchases"}}},
		{name: "no datacontenttype", contentType: ctCE,
			body: func(t *testing.T) string { return mustJSON(t, envelope(map[string]any{"datacontenttype": nil})) }, want: one},
		{name: "JSON suffix datacontenttype", contentType: ctCE,
			body: func(t *testing.T) string {
				return mustJSON(t, envelope(map[string]any{"datacontenttype": "application/vnd.shop+json; charset=utf-8"}))
			}, want: one},
		{name: "event agrees with the envelope", contentType: ctCE,
			body: func(t *testing.T) string {
				return mustJSON(t, envelope(map[string]any{"data": bareEvent(map[string]any{
					"event_id": "ce-1", "event_time": "2026-11-27T10:58:00.250+01:00",
				})}))
			}, want: one},
		{name: "event time in millis agrees", contentType: ctCE,
			body: func(t *testing.T) string {
				return mustJSON(t, envelope(map[string]any{"data": bareEvent(map[string]any{"event_time": ceTime.UnixMilli()})}))
			}, want: one},
		{name: "time agrees to the millisecond", contentType: ctCE,
			body: func(t *testing.T) string {
				return mustJSON(t, envelope(map[string]any{
					"time": "2026-11-27T09:58:00.250999Z",
					"data": bareEvent(map[string]any{"event_time": "2026-11-27T09:58:00.250Z"}),
				}))
			}, want: one},
		{name: "extension attributes ignored", contentType: ctCE,
			body: func(t *testing.T) string {
				return mustJSON(t, envelope(map[string]any{"subject": "cart-9", "traceparent": "00-abc", "partitionkey": 7}))
			}, want: one},
		{name: "batch", contentType: ctCEBatch,
			body: func(t *testing.T) string {
				return mustJSON(t, []any{envelope(nil), envelope(map[string]any{"id": "ce-2", "source": "/shop/app", "type": "purchases"})})
			}, want: []want{one[0], {"ce-2", ceTime, "/shop/app", "purchases"}}},
		{name: "batch of one", contentType: ctCEBatch,
			body: func(t *testing.T) string { return mustJSON(t, []any{envelope(nil)}) }, want: one},
		{name: "structured ignores ce headers", contentType: ctCE,
			body:   func(t *testing.T) string { return mustJSON(t, envelope(nil)) },
			header: map[string]string{"ce-type": "com.shop.clicks", "ce-id": "other"}, want: one},
		{name: "binary", contentType: ctJSON,
			body: func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) }, header: binaryHeaders(nil), want: one},
		{name: "binary percent-encoded source", contentType: ctJSON,
			body:   func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) },
			header: binaryHeaders(map[string]string{"ce-source": "https%3A%2F%2Fshop.example%2Fcart%20page"}),
			want:   []want{{"ce-1", ceTime, "https://shop.example/cart page", "com.shop.purchases"}}},
		{name: "binary time with offset", contentType: ctJSON,
			body:   func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) },
			header: binaryHeaders(map[string]string{"ce-time": "2026-11-27T10:58:00.25+01:00"}), want: one},
		{name: "binary without time", contentType: ctJSON,
			body:   func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) },
			header: binaryHeaders(map[string]string{"ce-time": ""}),
			want:   []want{{"ce-1", receiveTime, "/shop/checkout", "com.shop.purchases"}}},
		{name: "binary with extension headers", contentType: ctJSON,
			body:   func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) },
			header: binaryHeaders(map[string]string{"ce-traceparent": "00-abc", "Ce-Subject": "x"}), want: one},
		{name: "binary with a matching Idempotency-Key", contentType: ctJSON,
			body:   func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) },
			header: binaryHeaders(map[string]string{ingest.HeaderIdempotencyKey: "ce-1"}), want: one},
		{name: "binary with client headers", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) },
			header:     binaryHeaders(map[string]string{"X-Sluice-Header-Tenant": "acme"}),
			want:       one,
			wantHeader: map[string]string{"tenant": "acme"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			res := s.do(t, "POST", pathBuy, tt.contentType, tt.body(t), tt.header)
			if res.status != 202 {
				t.Fatalf("status = %d, want 202: %s", res.status, res.body)
			}
			recs := s.producer.records()
			if len(recs) != len(tt.want) {
				t.Fatalf("%d records, want %d", len(recs), len(tt.want))
			}
			for i, w := range tt.want {
				r := recs[i]
				checkRecord(t, s, r, w.id)
				if !r.Timestamp.Equal(w.time.Truncate(time.Millisecond)) {
					t.Errorf("record %d timestamp = %v, want %v", i, r.Timestamp, w.time)
				}
				if got, _ := header(r, ingest.RecordHeaderCESource); got != w.source {
					t.Errorf("record %d %s = %q, want %q", i, ingest.RecordHeaderCESource, got, w.source)
				}
				if got, _ := header(r, ingest.RecordHeaderCEType); got != w.typ {
					t.Errorf("record %d %s = %q, want %q", i, ingest.RecordHeaderCEType, got, w.typ)
				}
				for k, v := range tt.wantHeader {
					if got, _ := header(r, k); got != v {
						t.Errorf("record %d header %s = %q, want %q", i, k, got, v)
					}
				}
			}
		})
	}
}

// A plain JSON request carries no ce_* headers.
func TestPlainEventsHaveNoCloudEventHeaders(t *testing.T) {
	s := newTestServer(t, nil, nil)
	if res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), nil); res.status != 202 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	for _, r := range s.producer.records() {
		for _, h := range []string{ingest.RecordHeaderCESource, ingest.RecordHeaderCEType} {
			if _, ok := header(r, h); ok {
				t.Errorf("plain event has header %s", h)
			}
		}
	}
}

func TestCloudEventsRejected(t *testing.T) {
	type loc struct {
		index int
		field string
	}
	structured := func(edits map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return mustJSON(t, envelope(edits)) }
	}
	bare := func(t *testing.T) string { return mustJSON(t, bareEvent(nil)) }
	tests := []struct {
		name        string
		contentType string
		body        func(t *testing.T) string
		header      map[string]string
		wantStatus  int // default 400
		wantErrors  []loc
	}{
		{name: "no specversion", contentType: ctCE, body: structured(map[string]any{"specversion": nil}), wantErrors: []loc{{0, "specversion"}}},
		{name: "specversion 0.3", contentType: ctCE, body: structured(map[string]any{"specversion": "0.3"}), wantErrors: []loc{{0, "specversion"}}},
		{name: "specversion a number", contentType: ctCE, body: structured(map[string]any{"specversion": 1.0}), wantErrors: []loc{{0, "specversion"}}},
		{name: "no id", contentType: ctCE, body: structured(map[string]any{"id": nil}), wantErrors: []loc{{0, "id"}}},
		{name: "empty id", contentType: ctCE, body: structured(map[string]any{"id": ""}), wantErrors: []loc{{0, "id"}}},
		{name: "no source", contentType: ctCE, body: structured(map[string]any{"source": nil}), wantErrors: []loc{{0, "source"}}},
		{name: "no type", contentType: ctCE, body: structured(map[string]any{"type": nil}), wantErrors: []loc{{0, "type"}}},
		{name: "type of another topic", contentType: ctCE, body: structured(map[string]any{"type": "com.shop.clicks"}), wantErrors: []loc{{0, "type"}}},
		{name: "type without the dot", contentType: ctCE, body: structured(map[string]any{"type": "compurchases"}), wantErrors: []loc{{0, "type"}}},
		{name: "type with a suffix", contentType: ctCE, body: structured(map[string]any{"type": "com.shop.purchases.v2"}), wantErrors: []loc{{0, "type"}}},
		{name: "type in other case", contentType: ctCE, body: structured(map[string]any{"type": "com.shop.Purchases"}), wantErrors: []loc{{0, "type"}}},
		{name: "time not RFC 3339", contentType: ctCE, body: structured(map[string]any{"time": "yesterday"}), wantErrors: []loc{{0, "time"}}},
		{name: "time differs from event_time", contentType: ctCE,
			body:       structured(map[string]any{"data": bareEvent(map[string]any{"event_time": "2026-11-27T09:58:01Z"})}),
			wantErrors: []loc{{0, "event_time"}}},
		{name: "id differs from event_id", contentType: ctCE,
			body:       structured(map[string]any{"data": bareEvent(map[string]any{"event_id": "other"})}),
			wantErrors: []loc{{0, "event_id"}}},
		{name: "no data", contentType: ctCE, body: structured(map[string]any{"data": nil}), wantErrors: []loc{{0, "data"}}},
		{name: "data a string", contentType: ctCE, body: structured(map[string]any{"data": "{}"}), wantErrors: []loc{{0, "data"}}},
		{name: "data_base64", contentType: ctCE, body: structured(map[string]any{"data": nil, "data_base64": "e30="}), wantErrors: []loc{{0, "data_base64"}}},
		{name: "datacontenttype not JSON", contentType: ctCE, body: structured(map[string]any{"datacontenttype": "text/plain"}),
			wantErrors: []loc{{0, "datacontenttype"}}},
		{name: "every attribute missing", contentType: ctCE,
			body:       func(t *testing.T) string { return mustJSON(t, map[string]any{"data": bareEvent(nil)}) },
			wantErrors: []loc{{0, "specversion"}, {0, "id"}, {0, "source"}, {0, "type"}}},
		{name: "schema violation in data", contentType: ctCE,
			body:       structured(map[string]any{"data": bareEvent(map[string]any{"amount": "lots"})}),
			wantErrors: []loc{{0, "amount"}}},
		{name: "structured body is an array", contentType: ctCE,
			body: func(t *testing.T) string { return mustJSON(t, []any{envelope(nil)}) }},
		{name: "batch body is an object", contentType: ctCEBatch, body: structured(nil)},
		{name: "batch with an empty array", contentType: ctCEBatch, body: func(*testing.T) string { return "[]" }},
		{name: "batch with one bad envelope", contentType: ctCEBatch,
			body: func(t *testing.T) string {
				return mustJSON(t, []any{envelope(nil), envelope(map[string]any{"id": "ce-2", "type": "clicks"}), envelope(map[string]any{"id": "ce-3"})})
			}, wantErrors: []loc{{1, "type"}}},
		{name: "batch with a non-object", contentType: ctCEBatch,
			body: func(t *testing.T) string { return mustJSON(t, []any{envelope(nil), 42}) }, wantErrors: []loc{{1, ""}}},
		{name: "latin1 charset", contentType: ctCE + "; charset=iso-8859-1", body: structured(nil), wantStatus: 415},
		{name: "cloudevents xml", contentType: "application/cloudevents+xml", body: structured(nil), wantStatus: 415},

		{name: "binary without specversion", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-specversion": ""}), wantErrors: []loc{{0, "ce-specversion"}}},
		{name: "binary specversion 0.3", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-specversion": "0.3"}), wantErrors: []loc{{0, "ce-specversion"}}},
		{name: "binary with only an id", contentType: ctJSON, body: bare,
			header: map[string]string{"ce-id": "x"}, wantErrors: []loc{{0, "ce-specversion"}, {0, "ce-source"}, {0, "ce-type"}}},
		{name: "binary without id", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-id": ""}), wantErrors: []loc{{0, "ce-id"}}},
		{name: "binary without source", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-source": ""}), wantErrors: []loc{{0, "ce-source"}}},
		{name: "binary type of another topic", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-type": "clicks"}), wantErrors: []loc{{0, "ce-type"}}},
		{name: "binary bad percent-encoding", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-source": "/shop%zz"}), wantErrors: []loc{{0, "ce-source"}}},
		{name: "binary percent-encoded invalid UTF-8", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-id": "%ff%fe"}), wantErrors: []loc{{0, "ce-id"}}},
		{name: "binary time not RFC 3339", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{"ce-time": "27/11/2026"}), wantErrors: []loc{{0, "ce-time"}}},
		{name: "binary time differs from event_time", contentType: ctJSON,
			body: func(t *testing.T) string {
				return mustJSON(t, bareEvent(map[string]any{"event_time": "2026-11-27T09:00:00Z"}))
			},
			header: binaryHeaders(nil), wantErrors: []loc{{0, "event_time"}}},
		{name: "binary id differs from event_id", contentType: ctJSON,
			body:   func(t *testing.T) string { return mustJSON(t, bareEvent(map[string]any{"event_id": "body-id"})) },
			header: binaryHeaders(nil), wantErrors: []loc{{0, "event_id"}}},
		{name: "binary id differs from Idempotency-Key", contentType: ctJSON, body: bare,
			header: binaryHeaders(map[string]string{ingest.HeaderIdempotencyKey: "other"}), wantErrors: []loc{{0, "event_id"}}},
		{name: "binary array body", contentType: ctJSON,
			body: func(t *testing.T) string { return mustJSON(t, []any{bareEvent(nil)}) }, header: binaryHeaders(nil)},
		{name: "binary ndjson body", contentType: ctNDJSON, body: func(t *testing.T) string { return ndjson(t, bareEvent(nil)) },
			header: binaryHeaders(nil)},
		{name: "binary body not JSON", contentType: "text/plain", body: bare, header: binaryHeaders(nil), wantStatus: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			res := s.do(t, "POST", pathBuy, tt.contentType, tt.body(t), tt.header)
			want := tt.wantStatus
			if want == 0 {
				want = 400
			}
			if res.status != want {
				t.Fatalf("status = %d, want %d: %s", res.status, want, res.body)
			}
			p := res.problem(t)
			if n := len(s.producer.records()); n != 0 {
				t.Errorf("%d records produced", n)
			}
			if want != 400 {
				return
			}
			if p.Type != ingest.ProblemInvalid {
				t.Errorf("type = %q", p.Type)
			}
			var got []loc
			for _, e := range p.Errors {
				got = append(got, loc{e.Index, e.Field})
			}
			if !slices.Equal(got, tt.wantErrors) {
				t.Errorf("errors at %v, want %v: %s", got, tt.wantErrors, res.body)
			}
		})
	}
}
