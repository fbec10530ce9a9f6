package ingest_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-json"
	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/wire"
)

const (
	ctJSON   = "application/json"
	ctNDJSON = "application/x-ndjson"
	pathBuy  = "/api/v1/events/purchases"
)

func TestPostEventsAccepted(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        func(t *testing.T) string
		header      map[string]string
		wantIDs     []string // "" means: a server-assigned ULID
		wantTimes   []time.Time
		wantKeys    []string
	}{
		{
			name:        "single object",
			contentType: ctJSON,
			body:        func(t *testing.T) string { return mustJSON(t, purchase(nil)) },
			wantIDs:     []string{"01JDPURCHASE0000000000000A"},
			wantTimes:   []time.Time{time.Date(2026, 11, 27, 9, 59, 0, 500_000_000, time.UTC)},
			wantKeys:    []string{"u-42"},
		},
		{
			name:        "charset parameter",
			contentType: "application/json; charset=utf-8",
			body:        func(t *testing.T) string { return mustJSON(t, purchase(nil)) },
			wantIDs:     []string{"01JDPURCHASE0000000000000A"},
		},
		{
			name:        "defaults event_id and event_time",
			contentType: ctJSON,
			body: func(t *testing.T) string {
				return mustJSON(t, purchase(map[string]any{"event_id": nil, "event_time": nil}))
			},
			wantIDs:   []string{""},
			wantTimes: []time.Time{receiveTime},
		},
		{
			name:        "null event_id and event_time are defaulted",
			contentType: ctJSON,
			body: func(t *testing.T) string {
				return `{"event_id":null,"event_time":null,"user_id":"u-1","session_id":"s","country":"FR","device":"tablet","order_id":"o","amount":1,"currency":"EUR","product_id":"p"}`
			},
			wantIDs:   []string{""},
			wantTimes: []time.Time{receiveTime},
			wantKeys:  []string{"u-1"},
		},
		{
			name:        "event_time exactly MaxFuture ahead",
			contentType: ctJSON,
			body: func(t *testing.T) string {
				return mustJSON(t, purchase(map[string]any{"event_time": receiveTime.Add(5 * time.Minute).Format(time.RFC3339Nano)}))
			},
			wantTimes: []time.Time{receiveTime.Add(5 * time.Minute)},
		},
		{
			name:        "array",
			contentType: ctJSON,
			body: func(t *testing.T) string {
				return mustJSON(t, []any{
					purchase(map[string]any{"event_id": "a", "user_id": "u-1"}),
					purchase(map[string]any{"event_id": nil, "user_id": "u-2"}),
					purchase(map[string]any{"event_id": "c", "user_id": "u-3"}),
				})
			},
			wantIDs:  []string{"a", "", "c"},
			wantKeys: []string{"u-1", "u-2", "u-3"},
		},
		{
			name:        "ndjson with blank lines and CRLF",
			contentType: ctNDJSON,
			body: func(t *testing.T) string {
				return "\r\n" + mustJSON(t, purchase(map[string]any{"event_id": "a"})) + "\r\n\r\n   \n" +
					mustJSON(t, purchase(map[string]any{"event_id": "b", "user_id": "u-9"}))
			},
			wantIDs:  []string{"a", "b"},
			wantKeys: []string{"u-42", "u-9"},
		},
		{
			name:        "idempotency key becomes event_id",
			contentType: ctJSON,
			body:        func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"event_id": nil})) },
			header:      map[string]string{"Idempotency-Key": "order-7-attempt"},
			wantIDs:     []string{"order-7-attempt"},
		},
		{
			name:        "idempotency key equal to event_id",
			contentType: ctJSON,
			body:        func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"event_id": "k1"})) },
			header:      map[string]string{"Idempotency-Key": "k1"},
			wantIDs:     []string{"k1"},
		},
		{
			name:        "idempotency key on an array of one",
			contentType: ctJSON,
			body:        func(t *testing.T) string { return mustJSON(t, []any{purchase(map[string]any{"event_id": nil})}) },
			header:      map[string]string{"Idempotency-Key": "k2"},
			wantIDs:     []string{"k2"},
		},
		{
			name:        "idempotency key on a batch gives key-index ids",
			contentType: ctNDJSON,
			body: func(t *testing.T) string {
				return ndjson(t, purchase(map[string]any{"event_id": nil}), purchase(map[string]any{"event_id": "k4-1"}),
					purchase(map[string]any{"event_id": nil}))
			},
			header:  map[string]string{"Idempotency-Key": "k4"},
			wantIDs: []string{"k4-0", "k4-1", "k4-2"},
		},
		{
			name:        "idempotency key on one ndjson line",
			contentType: ctNDJSON,
			body:        func(t *testing.T) string { return ndjson(t, purchase(map[string]any{"event_id": nil})) },
			header:      map[string]string{"Idempotency-Key": "k3"},
			wantIDs:     []string{"k3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			res := s.do(t, "POST", pathBuy, tt.contentType, tt.body(t), tt.header)
			if res.status != 202 {
				t.Fatalf("status = %d, want 202; body %s", res.status, res.body)
			}
			var got ingest.Accepted
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatalf("body %s: %v", res.body, err)
			}
			recs := s.producer.records()
			if got.Accepted != len(recs) || len(got.EventIDs) != len(recs) {
				t.Fatalf("answer %+v for %d records", got, len(recs))
			}
			for i, rec := range recs {
				id := got.EventIDs[i]
				if tt.wantIDs != nil {
					if want := tt.wantIDs[i]; want != "" && id != want {
						t.Errorf("event %d id = %q, want %q", i, id, want)
					} else if want == "" {
						u, err := ulid.ParseStrict(id)
						if err != nil {
							t.Errorf("event %d id %q is not a ULID: %v", i, id, err)
						} else if u.Time() != uint64(receiveTime.UnixMilli()) {
							t.Errorf("ULID time = %d, want the receive time %d", u.Time(), receiveTime.UnixMilli())
						}
					}
				}
				if tt.wantTimes != nil && !rec.Timestamp.Equal(tt.wantTimes[i]) {
					t.Errorf("event %d timestamp = %v, want %v", i, rec.Timestamp, tt.wantTimes[i])
				}
				if tt.wantKeys != nil && string(rec.Key) != tt.wantKeys[i] {
					t.Errorf("event %d key = %q, want %q", i, rec.Key, tt.wantKeys[i])
				}
				checkRecord(t, s, rec, id)
			}
		})
	}
}

// checkRecord checks the parts of a record every accepted event has in common.
func checkRecord(t *testing.T, s *testServer, rec *kgo.Record, id string) {
	t.Helper()
	if rec.Topic != "purchases" {
		t.Errorf("topic = %q", rec.Topic)
	}
	if got, _ := header(rec, wire.HeaderEventID); got != id {
		t.Errorf("%s = %q, want %q", wire.HeaderEventID, got, id)
	}
	if got, _ := header(rec, wire.HeaderIngestTS); got != strconv.FormatInt(receiveTime.UnixMicro(), 10) {
		t.Errorf("%s = %q, want %d", wire.HeaderIngestTS, got, receiveTime.UnixMicro())
	}
	if len(rec.Value) < 5 || rec.Value[0] != 0 {
		t.Fatalf("value %x is not Confluent-framed", rec.Value)
	}
	v, schemaID, err := s.schemas.reg.Decode(context.Background(), rec.Value)
	if err != nil {
		t.Fatalf("decode value: %v", err)
	}
	if schemaID != s.schemas.purchases.ID {
		t.Errorf("schema id = %d, want %d", schemaID, s.schemas.purchases.ID)
	}
	if v["event_id"] != id || v["user_id"] != string(rec.Key) {
		t.Errorf("value event_id=%v user_id=%v, want %s %s", v["event_id"], v["user_id"], id, rec.Key)
	}
	if et, ok := v["event_time"].(time.Time); !ok || !et.Equal(rec.Timestamp) {
		t.Errorf("value event_time = %#v, record timestamp %v", v["event_time"], rec.Timestamp)
	}
}

func TestPostEventsValueRoundTrip(t *testing.T) {
	s := newTestServer(t, nil, nil)
	res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), nil)
	if res.status != 202 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	recs := s.producer.records()
	v, _, err := s.schemas.reg.Decode(context.Background(), recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"event_id": "01JDPURCHASE0000000000000A", "user_id": "u-42", "session_id": "s-1",
		"country": "DE", "device": "mobile", "order_id": "o-7", "amount": "19.99",
		"currency": "EUR", "items": "2", "product_id": "p-3",
	}
	for k, w := range want {
		if got := fmt.Sprint(v[k]); got != w {
			t.Errorf("%s = %s, want %s", k, got, w)
		}
	}
	wantTime := time.Date(2026, 11, 27, 9, 59, 0, 500_000_000, time.UTC)
	if et, ok := v["event_time"].(time.Time); !ok || !et.Equal(wantTime) {
		t.Errorf("event_time = %#v, want %v", v["event_time"], wantTime)
	}
	if len(v) != len(want)+1 {
		t.Errorf("value has %d fields, want %d: %v", len(v), len(want), v)
	}
}

func TestPostEventsRejected(t *testing.T) {
	future := receiveTime.Add(5*time.Minute + time.Millisecond).Format(time.RFC3339Nano)
	tests := []struct {
		name        string
		path        string
		contentType string
		body        func(t *testing.T) string
		header      map[string]string
		wantStatus  int
		wantType    string
		wantErrors  []ingest.ProblemError // compared on index and field
	}{
		{
			name: "unknown topic", path: "/api/v1/events/nope", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(nil)) },
			wantStatus: 404, wantType: ingest.ProblemUnknownTopic,
		},
		{
			name: "no content type", contentType: "",
			body:       func(t *testing.T) string { return mustJSON(t, purchase(nil)) },
			wantStatus: 415, wantType: ingest.ProblemUnsupportedMediaType,
		},
		{
			name: "text/plain", contentType: "text/plain",
			body:       func(t *testing.T) string { return mustJSON(t, purchase(nil)) },
			wantStatus: 415, wantType: ingest.ProblemUnsupportedMediaType,
		},
		{
			name: "latin1 charset", contentType: "application/json; charset=iso-8859-1",
			body:       func(t *testing.T) string { return mustJSON(t, purchase(nil)) },
			wantStatus: 415, wantType: ingest.ProblemUnsupportedMediaType,
		},
		{
			name: "unsupported content encoding", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(nil)) },
			header:     map[string]string{"Content-Encoding": "br"},
			wantStatus: 415, wantType: ingest.ProblemUnsupportedMediaType,
		},
		{
			name: "empty body", contentType: ctJSON,
			body:       func(t *testing.T) string { return "" },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
		},
		{
			name: "empty ndjson", contentType: ctNDJSON,
			body:       func(t *testing.T) string { return "\n\n" },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
		},
		{
			name: "empty array", contentType: ctJSON,
			body:       func(t *testing.T) string { return "[]" },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
		},
		{
			name: "malformed json", contentType: ctJSON,
			body:       func(t *testing.T) string { return `{"user_id": ` },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
		},
		{
			name: "scalar body", contentType: ctJSON,
			body:       func(t *testing.T) string { return `42` },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
		},
		{
			name: "invalid event in batch", contentType: ctJSON,
			body: func(t *testing.T) string {
				return mustJSON(t, []any{purchase(nil), purchase(map[string]any{"amount": "lots"}), purchase(nil)})
			},
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 1, Field: "amount"}},
		},
		{
			name: "non-object in batch", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, []any{purchase(nil), "x"}) },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 1, Field: ""}},
		},
		{
			name: "bad ndjson line", contentType: ctNDJSON,
			body: func(t *testing.T) string {
				return ndjson(t, purchase(nil)) + "{oops\n" + ndjson(t, purchase(map[string]any{"device": "watch"}))
			},
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 1, Field: ""}, {Index: 2, Field: "device"}},
		},
		{
			name: "missing key field", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"user_id": nil})) },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "user_id"}},
		},
		{
			name: "empty key field", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"user_id": ""})) },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "user_id"}},
		},
		{
			name: "event_time too far ahead", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"event_time": future})) },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "event_time"}},
		},
		{
			name: "event_time before the epoch", contentType: ctJSON,
			body: func(t *testing.T) string {
				return mustJSON(t, purchase(map[string]any{"event_time": "1969-12-31T23:59:59.999Z"}))
			},
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "event_time"}},
		},
		{
			name: "event_id not a string", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"event_id": 7})) },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "event_id"}},
		},
		{
			name: "empty event_id", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"event_id": ""})) },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "event_id"}},
		},
		{
			name: "idempotency key differs from event_id", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"event_id": "a"})) },
			header:     map[string]string{"Idempotency-Key": "b"},
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "event_id"}},
		},
		{
			name: "idempotency key on a batch whose event_id is not key-index", contentType: ctJSON,
			body: func(t *testing.T) string {
				return mustJSON(t, []any{purchase(map[string]any{"event_id": nil}), purchase(map[string]any{"event_id": "k-0"})})
			},
			header:     map[string]string{"Idempotency-Key": "k"},
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 1, Field: "event_id"}},
		},
		{
			name: "unknown field", contentType: ctJSON,
			body:       func(t *testing.T) string { return mustJSON(t, purchase(map[string]any{"colour": "red"})) },
			wantStatus: 400, wantType: ingest.ProblemInvalid,
			wantErrors: []ingest.ProblemError{{Index: 0, Field: "colour"}},
		},
		{
			name: "too many events", contentType: ctJSON,
			body:       func(t *testing.T) string { return "[" + strings.Repeat("{},", ingest.MaxEventsPerRequest) + "{}]" },
			wantStatus: 413, wantType: ingest.ProblemTooLarge,
		},
		{
			name: "too many ndjson lines", contentType: ctNDJSON,
			body:       func(t *testing.T) string { return strings.Repeat("{}\n", ingest.MaxEventsPerRequest+1) },
			wantStatus: 413, wantType: ingest.ProblemTooLarge,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			path := tt.path
			if path == "" {
				path = pathBuy
			}
			res := s.do(t, "POST", path, tt.contentType, tt.body(t), tt.header)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", res.status, tt.wantStatus, res.body)
			}
			p := res.problem(t)
			if p.Type != tt.wantType {
				t.Errorf("type = %q, want %q", p.Type, tt.wantType)
			}
			for _, want := range tt.wantErrors {
				found := false
				for _, got := range p.Errors {
					if got.Index == want.Index && got.Field == want.Field && got.Message != "" {
						found = true
					}
				}
				if !found {
					t.Errorf("no error {index %d field %q} in %+v", want.Index, want.Field, p.Errors)
				}
			}
			if n := len(s.producer.records()); n != 0 {
				t.Errorf("%d records produced for a rejected request", n)
			}
			if strings.Contains(string(res.body), `"accepted":`) {
				t.Errorf("rejected answer mentions accepted: %s", res.body)
			}
		})
	}
}

func TestPostEventsUnavailable(t *testing.T) {
	tests := []struct {
		name     string
		producer *fakeProducer
	}{
		{"producer error", &fakeProducer{fail: errKafkaDown}},
		{"not acknowledged in time", &fakeProducer{block: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.producer.hang != nil {
				t.Cleanup(func() { close(tt.producer.hang) })
			}
			s := newTestServer(t, tt.producer, func(c *ingest.Config) { c.AckTimeout = 50 * time.Millisecond })
			start := time.Now()
			res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, []any{purchase(nil), purchase(nil)}), nil)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("answer took %v with a 50ms AckTimeout", elapsed)
			}
			if res.status != 503 {
				t.Fatalf("status = %d, want 503; body %s", res.status, res.body)
			}
			if got := res.header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After = %q, want 1", got)
			}
			if p := res.problem(t); p.Type != ingest.ProblemUnavailable {
				t.Errorf("type = %q", p.Type)
			}
			if strings.Contains(string(res.body), `"accepted":`) {
				t.Errorf("503 answer mentions accepted: %s", res.body)
			}
		})
	}
}

func TestPostEventsErrorListIsBounded(t *testing.T) {
	s := newTestServer(t, nil, nil)
	evs := make([]any, 150)
	for i := range evs {
		evs[i] = purchase(map[string]any{"device": "watch"})
	}
	res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, evs), nil)
	if res.status != 400 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	p := res.problem(t)
	if len(p.Errors) != 100 || p.Errors[99].Index != 99 {
		t.Errorf("%d errors listed (last %+v), want the first 100", len(p.Errors), p.Errors[len(p.Errors)-1])
	}
	if !strings.Contains(p.Detail, "150 of 150") {
		t.Errorf("detail = %q, want the total count", p.Detail)
	}
}

func TestPostEventsBadIdempotencyKey(t *testing.T) {
	s := newTestServer(t, nil, nil)
	res := s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(map[string]any{"event_id": nil})),
		map[string]string{"Idempotency-Key": "k\xff"})
	if res.status != 400 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	res.problem(t)
	if n := len(s.producer.records()); n != 0 {
		t.Errorf("%d records produced", n)
	}
}
