package ingest

import (
	"bytes"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fasthttp"
)

// CloudEvents 1.0 media types accepted by POST /api/v1/events/{topic} (JSON event
// format, structured and batched content modes of the HTTP binding).
const (
	// MediaTypeCloudEvent is one structured-mode CloudEvent; its data is the event.
	MediaTypeCloudEvent = "application/cloudevents+json"
	// MediaTypeCloudEventBatch is a JSON array of structured-mode CloudEvents.
	MediaTypeCloudEventBatch = "application/cloudevents-batch+json"
)

// Record headers carrying CloudEvents attributes, named as the CloudEvents Kafka
// protocol binding names them (ce_ prefix). Every record ingested from a CloudEvent has
// both; the id travels as sluice-event-id and the time as the record timestamp.
const (
	RecordHeaderCESource = "ce_source"
	RecordHeaderCEType   = "ce_type"
)

// ceSpecVersion is the only CloudEvents specversion accepted.
const ceSpecVersion = "1.0"

// ceHeaderPrefix marks the attribute headers of a binary-mode CloudEvent.
const ceHeaderPrefix = "ce-"

// ceMode is how a request carries CloudEvents, if it does.
type ceMode int

const (
	ceNone       ceMode = iota // plain events
	ceStructured               // application/cloudevents+json: one envelope
	ceBatch                    // application/cloudevents-batch+json: an array of envelopes
	ceBinary                   // ce-* headers hold the attributes, the body is the event
)

// cloudEventsModeOf maps a Content-Type to a structured CloudEvents mode; ok is false
// for any other type and for a charset other than UTF-8.
func cloudEventsModeOf(contentType string) (ceMode, bool) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ceNone, false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return ceNone, false
	}
	switch mt {
	case MediaTypeCloudEvent:
		return ceStructured, true
	case MediaTypeCloudEventBatch:
		return ceBatch, true
	}
	return ceNone, false
}

// ceAttrs are the context attributes of one CloudEvent that ingest uses, and the
// problems found reading them. prefix is "ce-" for binary mode, so that a problem names
// the header the client sent, and "" for structured mode (the JSON member).
type ceAttrs struct {
	prefix                           string
	specVersion, id, source, typ, tm string
	hasTime                          bool
	problems                         []eventProblem
}

func (a *ceAttrs) problem(attr, msg string) {
	a.problems = append(a.problems, eventProblem{field: a.prefix + attr, message: msg})
}

// label names attr in a message: "CloudEvent id" or "ce-id header".
func (a *ceAttrs) label(attr string) string {
	if a.prefix == "" {
		return "CloudEvent " + attr
	}
	return a.prefix + attr + " header"
}

// bad reports whether attr already has a problem.
func (a *ceAttrs) bad(attr string) bool {
	for _, p := range a.problems {
		if p.field == a.prefix+attr {
			return true
		}
	}
	return false
}

// binaryAttrs reads the attributes of a binary-mode CloudEvent from the ce-* request
// headers. present is false when the request has no ce-* header at all (not a
// CloudEvent); any ce-* header makes it one, so a client that forgets ce-specversion
// hears about it. Values are percent-decoded as the HTTP binding requires; other ce-*
// headers (extensions) are ignored.
func binaryAttrs(h *fasthttp.RequestHeader) (attrs ceAttrs, present bool) {
	attrs.prefix = ceHeaderPrefix
	var seen [5]bool
	h.VisitAll(func(k, v []byte) {
		if len(k) < len(ceHeaderPrefix) || !bytes.EqualFold(k[:len(ceHeaderPrefix)], []byte(ceHeaderPrefix)) {
			return
		}
		present = true
		name := strings.ToLower(string(k[len(ceHeaderPrefix):]))
		var dst *string
		var slot int
		switch name {
		case "specversion":
			dst, slot = &attrs.specVersion, 0
		case "id":
			dst, slot = &attrs.id, 1
		case "source":
			dst, slot = &attrs.source, 2
		case "type":
			dst, slot = &attrs.typ, 3
		case "time":
			dst, slot = &attrs.tm, 4
			attrs.hasTime = true
		default:
			return
		}
		if seen[slot] {
			if !attrs.bad(name) {
				attrs.problem(name, "given more than once")
			}
			return
		}
		seen[slot] = true
		val, err := url.PathUnescape(string(v)) // copies: fasthttp reuses header memory
		if err != nil || !utf8.ValidString(val) {
			attrs.problem(name, "must be percent-encoded UTF-8 (CloudEvents HTTP binding)")
			return
		}
		*dst = val
	})
	return attrs, present
}

// structuredEvent reads the envelope of a structured-mode CloudEvent: its attributes
// and its data, the event. data is nil when the envelope has none usable.
func structuredEvent(obj map[string]any) (ceAttrs, map[string]any) {
	var a ceAttrs
	str := func(attr string, dst *string) bool {
		v, ok := obj[attr]
		if !ok || v == nil {
			return false
		}
		s, ok := v.(string)
		if !ok {
			a.problem(attr, "must be a string, got "+jsonKind(v))
			return true
		}
		*dst = s
		return true
	}
	str("specversion", &a.specVersion)
	str("id", &a.id)
	str("source", &a.source)
	str("type", &a.typ)
	a.hasTime = str("time", &a.tm)
	var ct string
	if str("datacontenttype", &ct) && !a.bad("datacontenttype") && !jsonMediaType(ct) {
		a.problem("datacontenttype", fmt.Sprintf("%q is not JSON; data must be the event as a JSON object", truncate(ct)))
	}
	if _, ok := obj["data_base64"]; ok {
		a.problem("data_base64", "binary data is not supported; send the event as a JSON object in data")
	}
	v, ok := obj["data"]
	if !ok || v == nil {
		if !a.bad("data_base64") {
			a.problem("data", "required: the event as a JSON object")
		}
		return a, nil
	}
	data, ok := v.(map[string]any)
	if !ok {
		a.problem("data", "must be the event as a JSON object, got "+jsonKind(v))
		return a, nil
	}
	return a, data
}

// jsonMediaType reports whether a datacontenttype describes JSON.
func jsonMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// ceTypeMatches is the rule tying a CloudEvent's type to the topic it is posted to:
// the type is the topic name itself ("purchases") or ends in "." followed by it
// ("com.shop.purchases"), the reverse-DNS style CloudEvents recommends.
func ceTypeMatches(typ, topic string) bool {
	return typ == topic || strings.HasSuffix(typ, "."+topic)
}

// check validates the required attributes (specversion "1.0", id, source, type
// matching topic) and the optional time (RFC 3339). It returns the parsed time.
func (a *ceAttrs) check(topic string) (time.Time, bool) {
	switch {
	case a.bad("specversion"):
	case a.specVersion == "":
		a.problem("specversion", `required: must be "`+ceSpecVersion+`"`)
	case a.specVersion != ceSpecVersion:
		a.problem("specversion", fmt.Sprintf(`%q is not supported; must be "%s"`, truncate(a.specVersion), ceSpecVersion))
	}
	if a.id == "" && !a.bad("id") {
		a.problem("id", "required: it becomes the event_id")
	}
	if a.source == "" && !a.bad("source") {
		a.problem("source", "required")
	}
	rule := fmt.Sprintf(`must be %q or end in ".%s" (e.g. "com.example.%s")`, topic, topic, topic)
	switch {
	case a.bad("type"):
	case a.typ == "":
		a.problem("type", "required: "+rule)
	case !ceTypeMatches(a.typ, topic):
		a.problem("type", fmt.Sprintf("%q does not match topic %q: %s", truncate(a.typ), topic, rule))
	}
	if !a.hasTime || a.bad("time") {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, a.tm)
	if err != nil {
		a.problem("time", "must be an RFC 3339 timestamp")
		return time.Time{}, false
	}
	return t, true
}

// mergeInto makes the CloudEvent's id the event's event_id and its time the event's
// event_time. An event that already has them must agree: the same id, the same
// instant to the millisecond (event_time's precision).
func (a *ceAttrs) mergeInto(ev map[string]any, t time.Time, hasTime bool) {
	if !a.bad("id") && a.id != "" {
		switch v, ok := ev["event_id"]; {
		case !ok || v == nil:
			ev["event_id"] = a.id
		case v != a.id:
			a.problems = append(a.problems, eventProblem{field: "event_id",
				message: fmt.Sprintf("differs from the %s %q", a.label("id"), truncate(a.id))})
		}
	}
	if !hasTime {
		return
	}
	v, ok := ev["event_time"]
	if !ok || v == nil {
		ev["event_time"] = a.tm
		return
	}
	if et, ok := eventTimeOf(v); ok && et.UnixMilli() != t.UnixMilli() {
		a.problems = append(a.problems, eventProblem{field: "event_time",
			message: fmt.Sprintf("differs from the %s %s", a.label("time"), truncate(a.tm))})
	}
}

// eventTimeOf reads an event_time as the schema does (RFC 3339 or epoch millis); ok is
// false when it is unreadable, which schema validation reports.
func eventTimeOf(v any) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		return t, err == nil
	case json.Number:
		n, err := x.Int64()
		return time.UnixMilli(n), err == nil
	}
	return time.Time{}, false
}

// recordHeaders are the ce_* record headers of a valid CloudEvent.
func (a *ceAttrs) recordHeaders() []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: RecordHeaderCESource, Value: []byte(a.source)},
		{Key: RecordHeaderCEType, Value: []byte(a.typ)},
	}
}

// unwrapCloudEvents turns the CloudEvents of b into plain events: each envelope is
// replaced by its data (structured modes) and the attributes (the envelope's, or the
// ce-* headers' in binary mode) fill in event_id and event_time. An event whose
// envelope is wrong becomes a problem of that event, so a batch is still answered
// all-or-nothing with every problem listed. It returns the ce_* record headers of each
// event (nil for mode ceNone), and a request error when the body's shape does not fit
// the mode.
func unwrapCloudEvents(mode ceMode, binary ceAttrs, b *batch, topic string) ([][]kgo.RecordHeader, *requestError) {
	switch {
	case mode == ceNone:
		return nil, nil
	case mode == ceStructured && !b.single:
		return nil, errInvalidBody("an " + MediaTypeCloudEvent + " body is one CloudEvent (a JSON object); send batches as " +
			MediaTypeCloudEventBatch)
	case mode == ceBatch && b.single:
		return nil, errInvalidBody("an " + MediaTypeCloudEventBatch + " body is a JSON array of CloudEvents")
	case mode == ceBinary && !b.single:
		return nil, errInvalidBody("a binary-mode CloudEvent (ce-* headers) carries one event: the body must be one JSON object")
	}
	hdrs := make([][]kgo.RecordHeader, len(b.events))
	for i, obj := range b.events {
		if obj == nil {
			continue // not an object; already a problem
		}
		a, ev := binary, obj
		a.problems = slices.Clone(binary.problems)
		if mode != ceBinary {
			a, ev = structuredEvent(obj)
		}
		t, hasTime := a.check(topic)
		if ev != nil {
			a.mergeInto(ev, t, hasTime)
		}
		if len(a.problems) > 0 {
			b.events[i] = nil
			for _, p := range a.problems {
				p.index = i
				b.problems = append(b.problems, p)
			}
			continue
		}
		b.events[i] = ev
		hdrs[i] = a.recordHeaders()
	}
	return hdrs, nil
}
