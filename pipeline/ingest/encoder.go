package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// rfc3339Millis is the format of a defaulted event_time.
const rfc3339Millis = "2006-01-02T15:04:05.000Z07:00"

// Encoder turns decoded JSON events of one topic into Kafka records exactly as the ingest
// API does, so that other writers (sluice generate) produce identical records. It is safe
// for concurrent use.
type Encoder struct {
	topic     Topic
	now       func() time.Time
	maxFuture time.Duration
}

// NewEncoder returns an Encoder for t. now is the receive-time clock (default time.Now);
// events whose event_time is more than maxFuture ahead of it are invalid (0 means
// DefaultMaxFuture). t should pass Topic.Validate; Record reports a nil codec as an error.
func NewEncoder(t Topic, now func() time.Time, maxFuture time.Duration) *Encoder {
	if now == nil {
		now = time.Now
	}
	if maxFuture <= 0 {
		maxFuture = DefaultMaxFuture
	}
	return &Encoder{topic: t, now: now, maxFuture: maxFuture}
}

// Topic returns the topic the Encoder writes to.
func (e *Encoder) Topic() Topic { return e.topic }

// Record converts one event (a JSON object decoded with UseNumber) to a record:
// Topic = topic name, Key = the key field's value, Value = Confluent-framed Avro,
// Timestamp = event_time, headers sluice-event-id and sluice-ingest-ts.
//
// A missing or null event_id becomes idempotencyKey if set (the API passes the id the
// request's Idempotency-Key gives this event), else a new ULID; a body event_id that
// differs from a non-empty idempotencyKey is invalid. A missing or null
// event_time becomes the receive time. Record stores both defaults in ev.
//
// It returns the record and its event id. Invalid input yields a *schema.ValidationError
// listing every field problem found; any other error is a server-side failure.
func (e *Encoder) Record(ev map[string]any, idempotencyKey string) (*kgo.Record, string, error) {
	recv := e.now()
	return e.record(ev, idempotencyKey, recv, ingestTS(recv))
}

// ingestTS formats the sluice-ingest-ts header value of receive time recv.
func ingestTS(recv time.Time) []byte {
	return strconv.AppendInt(make([]byte, 0, 20), recv.UnixMicro(), 10)
}

// record is Record with the receive time fixed by the caller (one per request) and its
// header value precomputed; ts is shared by the returned record and must not be modified.
func (e *Encoder) record(ev map[string]any, idemKey string, recv time.Time, ts []byte) (*kgo.Record, string, error) {
	codec := e.topic.Codec
	if codec == nil || codec.Schema == nil {
		return nil, "", fmt.Errorf("ingest: topic %q has no codec", e.topic.Name)
	}
	var fields []schema.FieldError
	problem := func(field, msg string) {
		fields = append(fields, schema.FieldError{Field: field, Message: msg})
	}

	id, idProblem := eventID(ev, idemKey, recv)
	if idProblem != "" {
		problem("event_id", idProblem)
	}
	if v, ok := ev["event_time"]; !ok || v == nil {
		// The receive time to the millisecond, as a time.Time: formatting it for the
		// converter to parse back cost as much as converting the rest of the event.
		ev["event_time"] = time.UnixMilli(recv.UnixMilli()).UTC()
	}
	if v, ok := ev[e.topic.KeyField]; !ok || v == nil || v == "" {
		problem(e.topic.KeyField, "required: it is the record key")
	}

	out, err := codec.FromJSON(ev)
	if err != nil {
		var ve *schema.ValidationError
		if !errors.As(err, &ve) {
			return nil, "", fmt.Errorf("ingest: convert %s event: %w", e.topic.Name, err)
		}
		fields = mergeFields(fields, ve.Fields)
	}
	if len(fields) > 0 {
		return nil, "", &schema.ValidationError{Fields: fields}
	}

	ts0 := recv
	if t, ok := out["event_time"].(time.Time); ok {
		switch {
		case t.Sub(recv) > e.maxFuture:
			return nil, "", invalid("event_time", fmt.Sprintf("more than %s ahead of the receive time", e.maxFuture))
		case t.Before(time.Unix(0, 0)):
			// Kafka record timestamps are non-negative; the broker would refuse the
			// record and the client would see a 503 for its own mistake.
			return nil, "", invalid("event_time", "must not be before 1970-01-01T00:00:00Z")
		}
		ts0 = t
	}
	key, ok := keyString(out[e.topic.KeyField])
	if !ok {
		return nil, "", invalid(e.topic.KeyField, "required: it is the record key")
	}
	value, err := codec.AppendEncode(nil, out)
	if err != nil {
		return nil, "", fmt.Errorf("ingest: encode %s event %s: %w", e.topic.Name, id, err)
	}
	return &kgo.Record{
		Topic:     e.topic.Name,
		Key:       []byte(key),
		Value:     value,
		Timestamp: ts0,
		Headers: []kgo.RecordHeader{
			{Key: wire.HeaderEventID, Value: []byte(id)},
			{Key: wire.HeaderIngestTS, Value: ts},
		},
	}, id, nil
}

// invalid is a validation error of one field.
func invalid(field, msg string) error {
	return &schema.ValidationError{Fields: []schema.FieldError{{Field: field, Message: msg}}}
}

// eventID resolves and stores the event_id of ev. It returns the id and, if the
// body's event_id is unusable, a message saying why.
func eventID(ev map[string]any, idemKey string, recv time.Time) (string, string) {
	v, ok := ev["event_id"]
	if !ok || v == nil {
		id := idemKey
		if id == "" {
			id = newULID(recv)
		}
		ev["event_id"] = id
		return id, ""
	}
	s, ok := v.(string)
	switch {
	case !ok:
		return "", "must be a string"
	case s == "":
		return "", "must not be empty"
	case idemKey != "" && s != idemKey:
		return "", "differs from " + strconv.Quote(truncate(idemKey)) + ", the event_id the Idempotency-Key header gives this event"
	}
	return s, ""
}

// newULID returns a ULID for receive time t, or for the wall clock if t is out of the
// ULID range.
func newULID(t time.Time) string {
	id, err := ulid.New(ulid.Timestamp(t), ulid.DefaultEntropy())
	if err != nil {
		return ulid.Make().String()
	}
	return id.String()
}

// keyString renders a converted key field value as the record key.
func keyString(v any) (string, bool) {
	switch k := v.(type) {
	case string:
		return k, k != ""
	case int32:
		return strconv.FormatInt(int64(k), 10), true
	case int64:
		return strconv.FormatInt(k, 10), true
	case int:
		return strconv.Itoa(k), true
	case []byte:
		return string(k), len(k) > 0
	}
	return "", false
}

// mergeFields appends the problems of more whose field has no problem in have yet.
func mergeFields(have, more []schema.FieldError) []schema.FieldError {
	for _, m := range more {
		dup := false
		for _, h := range have {
			if h.Field == m.Field {
				dup = true
				break
			}
		}
		if !dup {
			have = append(have, m)
		}
	}
	return have
}
