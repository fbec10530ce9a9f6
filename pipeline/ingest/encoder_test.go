package ingest_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/goccy/go-json"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// decodeEvent decodes one JSON object the way the API does (numbers as json.Number).
func decodeEvent(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewBufferString(s))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestEncoderRecord(t *testing.T) {
	schemas := newTestSchemas(t)
	topic := schemas.topics()[0]
	tests := []struct {
		name       string
		event      map[string]any
		idemKey    string
		wantID     string
		wantTime   time.Time
		wantFields []string // fields of the *schema.ValidationError, nil: valid
	}{
		{name: "valid", event: purchase(nil), wantID: "01JDPURCHASE0000000000000A",
			wantTime: time.Date(2026, 11, 27, 9, 59, 0, 500_000_000, time.UTC)},
		{name: "idempotency key", event: purchase(map[string]any{"event_id": nil}), idemKey: "k", wantID: "k"},
		{name: "integer millis event_time", event: purchase(map[string]any{"event_time": json.Number("1795600000000")}),
			wantTime: time.UnixMilli(1795600000000)},
		{name: "defaulted event_time", event: purchase(map[string]any{"event_time": nil}), wantTime: receiveTime},
		{name: "several problems", event: purchase(map[string]any{"user_id": nil, "amount": "x", "event_id": false}),
			wantFields: []string{"event_id", "user_id", "amount"}},
		{name: "id mismatch", event: purchase(map[string]any{"event_id": "a"}), idemKey: "b", wantFields: []string{"event_id"}},
		{name: "future", event: purchase(map[string]any{"event_time": "2026-11-27T10:05:00.124Z"}), wantFields: []string{"event_time"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := ingest.NewEncoder(topic, fixedNow, 5*time.Minute)
			ev := decodeEvent(t, mustJSON(t, tt.event))
			rec, id, err := enc.Record(ev, tt.idemKey)
			if tt.wantFields != nil {
				var ve *schema.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("err = %v, want a *schema.ValidationError", err)
				}
				for _, f := range tt.wantFields {
					found := false
					for _, got := range ve.Fields {
						found = found || got.Field == f
					}
					if !found {
						t.Errorf("no problem for %s in %+v", f, ve.Fields)
					}
				}
				if rec != nil {
					t.Error("record returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Record: %v", err)
			}
			if tt.wantID != "" && id != tt.wantID {
				t.Errorf("id = %q, want %q", id, tt.wantID)
			}
			if !tt.wantTime.IsZero() && !rec.Timestamp.Equal(tt.wantTime) {
				t.Errorf("timestamp = %v, want %v", rec.Timestamp, tt.wantTime)
			}
			if rec.Topic != "purchases" || string(rec.Key) != "u-42" {
				t.Errorf("topic %q key %q", rec.Topic, rec.Key)
			}
			if got, _ := header(rec, wire.HeaderEventID); got != id {
				t.Errorf("event id header %q, want %q", got, id)
			}
		})
	}
}

// TestEncoderMatchesServer checks that sluice generate (Encoder) and the API write the
// same record for the same event.
func TestEncoderMatchesServer(t *testing.T) {
	s := newTestServer(t, nil, nil)
	body := mustJSON(t, purchase(nil))
	if res := s.do(t, "POST", pathBuy, ctJSON, body, nil); res.status != 202 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	fromAPI := s.producer.records()[0]
	// The API adds the request id (per request, not per event); the rest must match.
	if n := len(fromAPI.Headers); n == 0 || fromAPI.Headers[n-1].Key != wire.HeaderRequestID {
		t.Fatalf("API record has no %s header last: %v", wire.HeaderRequestID, fromAPI.Headers)
	}
	fromAPI.Headers = fromAPI.Headers[:len(fromAPI.Headers)-1]

	enc := ingest.NewEncoder(ingest.Topic{Name: "purchases", KeyField: "user_id", Codec: s.schemas.purchases}, fixedNow, 0)
	fromEnc, _, err := enc.Record(decodeEvent(t, body), "")
	if err != nil {
		t.Fatal(err)
	}
	if fromEnc.Topic != fromAPI.Topic || !bytes.Equal(fromEnc.Key, fromAPI.Key) ||
		!bytes.Equal(fromEnc.Value, fromAPI.Value) || !fromEnc.Timestamp.Equal(fromAPI.Timestamp) {
		t.Errorf("encoder record %+v differs from API record %+v", fromEnc, fromAPI)
	}
	if len(fromEnc.Headers) != len(fromAPI.Headers) {
		t.Fatalf("headers %v vs %v", fromEnc.Headers, fromAPI.Headers)
	}
	for i := range fromEnc.Headers {
		if fromEnc.Headers[i].Key != fromAPI.Headers[i].Key || !bytes.Equal(fromEnc.Headers[i].Value, fromAPI.Headers[i].Value) {
			t.Errorf("header %d: %v vs %v", i, fromEnc.Headers[i], fromAPI.Headers[i])
		}
	}
}
