package ingest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/hamba/avro/v2"
)

// Documentation routes.
const (
	routeOpenAPI = "/openapi.json"
	routeDocs    = "/docs"
)

// Example returns an example event of a topic for the API document; nil leaves the
// topic without an example. Set by the service (from the generators).
type Example func(topic string) map[string]any

// openAPI builds the OpenAPI 3.1 document of the API: every route, and per topic the
// request body schema derived from its Avro schema, with an example when ex gives one.
func openAPI(topics []Topic, ex Example) ([]byte, error) {
	problem := map[string]any{"$ref": "#/components/schemas/Problem"}
	problemResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/problem+json": map[string]any{"schema": problem}}}
	}
	paths := map[string]any{}
	bearer := []any{map[string]any{bearerScheme: []any{}}}
	schemas := map[string]any{
		"Problem": map[string]any{
			"type":        "object",
			"description": "RFC 9457 problem details; batches list the failing events in errors.",
			"properties": map[string]any{
				"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
				"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
				"errors": map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
				"event_ids": map[string]any{"type": "array", "items": map[string]any{"type": "string"},
					"description": "504 only: the ids the events were given; retry with them"},
			},
			"required": []string{"type", "title", "status"},
		},
		"Accepted": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"accepted":  map[string]any{"type": "integer", "minimum": 1},
				"event_ids": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
			},
			"required": []string{"accepted", "event_ids"},
		},
	}
	for _, t := range topics {
		name := schemaName(t.Name)
		s, err := jsonSchema(t.Codec.Schema, true)
		if err != nil {
			return nil, fmt.Errorf("openapi: topic %s: %w", t.Name, err)
		}
		schemas[name] = s
		ref := map[string]any{"$ref": "#/components/schemas/" + name}
		jsonBody := map[string]any{"schema": map[string]any{"oneOf": []any{
			ref, map[string]any{"type": "array", "items": ref, "minItems": 1, "maxItems": MaxEventsPerRequest},
		}}}
		if ex != nil {
			if e := ex(t.Name); e != nil {
				jsonBody["example"] = e
			}
		}
		paths["/api/v1/events/"+t.Name] = map[string]any{"post": map[string]any{
			"operationId": "postEvents_" + t.Name,
			"security":    bearer,
			"summary":     "Send " + t.Name + " events",
			"description": "One event, a JSON array (batch) or NDJSON. All-or-nothing: 202 only after Kafka " +
				"acknowledged and committed every record (acks=all, one transaction); any other answer but 504 leaves " +
				"nothing written. Idempotency-Key makes the event ids deterministic: the key itself for a single event, " +
				"<key>-<index> in a batch; the same key with another body answers 422.",
			"parameters": []any{
				map[string]any{"name": "Idempotency-Key", "in": "header", "required": false, "schema": map[string]any{"type": "string", "maxLength": 128}},
			},
			"requestBody": map[string]any{"required": true, "content": map[string]any{
				"application/json":     jsonBody,
				"application/x-ndjson": map[string]any{"schema": map[string]any{"type": "string", "description": "one " + name + " per line"}},
			}},
			"responses": map[string]any{
				"202": map[string]any{"description": "every event is durable in Kafka", "content": map[string]any{
					"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Accepted"}}}},
				"400": problemResp("invalid events (per-event errors) or body"),
				"401": problemResp("missing or invalid token (when auth is on)"),
				"403": problemResp("token lacks the events:write scope"),
				"413": problemResp("body or batch too large, or an event's record over the topic's max.message.bytes"),
				"415": problemResp("unsupported content type or encoding"),
				"422": problemResp("Idempotency-Key used before with a different body; nothing written"),
				"429": problemResp("rate limited; see Retry-After"),
				"500": problemResp("Kafka refused the records for good (not retryable); nothing written"),
				"503": problemResp("Kafka did not take the events in time, the buffer is full, or the server holds --max-inflight-bytes of bodies (overloaded, body unread); nothing written; see Retry-After"),
				"504": problemResp("commit sent, outcome unknown; retry with the same Idempotency-Key; see Retry-After"),
			},
		}}
	}
	simple := func(id, summary, ct string, schema map[string]any, extra map[string]any) map[string]any {
		resp := map[string]any{"200": map[string]any{"description": "OK", "content": map[string]any{ct: map[string]any{"schema": schema}}}}
		for k, v := range extra {
			resp[k] = v
		}
		return map[string]any{"get": map[string]any{"operationId": id, "summary": summary, "responses": resp}}
	}
	obj := map[string]any{"type": "object"}
	ws := func(id, summary, desc string) map[string]any {
		return map[string]any{"get": map[string]any{
			"operationId": id, "summary": summary, "description": desc, "security": bearer,
			"parameters": []any{map[string]any{"name": "topic", "in": "path", "required": true, "schema": map[string]any{"type": "string"}}},
			"responses": map[string]any{
				"101": map[string]any{"description": "switched to the WebSocket protocol"},
				"400": problemResp("bad filter or client header"),
				"401": problemResp("missing or invalid token (when auth is on)"),
				"403": problemResp("token lacks the scope"),
				"404": problemResp("unknown topic"),
				"426": problemResp("not a WebSocket upgrade request"),
				"429": problemResp("rate limited; see Retry-After"),
				"503": problemResp("Kafka unavailable; see Retry-After"),
			},
		}}
	}
	paths["/api/v1/stream/{topic}"] = ws("streamTopic", "Live records of a clean or aggregate topic (WebSocket)",
		"{topic} is the Kafka topic, e.g. purchases.clean or agg.revenue_by_country_1m. Each record is one JSON text frame; "+
			"?filter=field=value keeps records whose top-level field equals value. A client that falls behind (a record waiting for it over 30 s, or over 32 MiB waiting) is closed with code 4008; "+
			"the connection closes with 1008 when the token expires. "+
			"Scope events:read; the token may come as Sec-WebSocket-Protocol: bearer, <token>.")
	paths["/api/v1/ingest/{topic}"] = ws("ingestWebSocket", "Send events over a WebSocket",
		"Each text message is one event or a JSON array. Every message is answered, in order, with "+
			`{"seq": n, "accepted": k, "event_ids": [...]} once Kafka acknowledged it, or {"seq": n, "error": <problem>}. `+
			"At most MaxInFlight unanswered messages per connection: the server stops reading until acks go out. "+
			"The handshake counts as one request against the rate limits, each message as its number of events "+
			`(over a limit: a 429 error frame with "retry_after" seconds). The connection closes with 1008 when the token expires. `+
			"Scope events:write[:topic].")
	paths[routeTopics] = simple("getTopics", "Topics and their schemas", "application/json", obj, nil)
	paths[routeTopics].(map[string]any)["get"].(map[string]any)["security"] = bearer
	paths[routeHealthz] = simple("healthz", "The process is alive", "application/json", obj, nil)
	paths[routeReadyz] = simple("readyz", "Kafka and the schema registry are reachable", "application/json", obj,
		map[string]any{"503": problemResp("not ready")})
	paths[routeMetrics] = simple("metrics", "Prometheus metrics", "text/plain", map[string]any{"type": "string"}, nil)
	paths[routeOpenAPI] = simple("openapi", "This document", "application/json", obj, nil)
	paths[routeDocs] = simple("docs", "The interactive reference of this document (try-it-out)", "text/html", map[string]any{"type": "string"}, nil)
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Sluice ingest API", "version": "v1",
			"description": "Send events to Kafka through Sluice: validated against the topic's Avro schema, durable on 202."},
		"paths": paths,
		"components": map[string]any{"schemas": schemas, "securitySchemes": map[string]any{
			bearerScheme: map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
				"description": "A JWT with scope events:write (posting) or events:read (streaming), when the server has authentication on."},
		}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// schemaName is the component name of a topic's event: purchases -> PurchasesEvent.
func schemaName(topic string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(topic, func(r rune) bool { return r == '_' || r == '-' || r == '.' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String() + "Event"
}

// jsonSchema translates an Avro schema into the JSON Schema of the JSON the API accepts
// for it (schema.Codec.FromJSON). top marks the event record: its event_id and
// event_time are optional (the API fills them).
func jsonSchema(s avro.Schema, top bool) (map[string]any, error) {
	switch s := s.(type) {
	case *avro.RecordSchema:
		props := map[string]any{}
		var required []string
		for _, f := range s.Fields() {
			fs, err := jsonSchema(f.Type(), false)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.Name(), err)
			}
			if d := f.Doc(); d != "" {
				fs["description"] = d
			}
			props[f.Name()] = fs
			optional := f.HasDefault() || nullable(f.Type()) || (top && (f.Name() == "event_id" || f.Name() == "event_time"))
			if !optional {
				required = append(required, f.Name())
			}
		}
		sort.Strings(required)
		out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			out["required"] = required
		}
		if d := s.Doc(); d != "" {
			out["description"] = d
		}
		return out, nil
	case *avro.EnumSchema:
		return map[string]any{"type": "string", "enum": s.Symbols()}, nil
	case *avro.ArraySchema:
		items, err := jsonSchema(s.Items(), false)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case *avro.MapSchema:
		vals, err := jsonSchema(s.Values(), false)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": vals}, nil
	case *avro.UnionSchema:
		var alts []any
		for _, t := range s.Types() {
			if t.Type() == avro.Null {
				alts = append(alts, map[string]any{"type": "null"})
				continue
			}
			js, err := jsonSchema(t, false)
			if err != nil {
				return nil, err
			}
			alts = append(alts, js)
		}
		return map[string]any{"anyOf": alts}, nil
	case *avro.PrimitiveSchema:
		if l := s.Logical(); l != nil && (l.Type() == avro.TimestampMillis || l.Type() == avro.TimestampMicros) {
			return map[string]any{"anyOf": []any{
				map[string]any{"type": "string", "format": "date-time"},
				map[string]any{"type": "integer", "description": "unix milliseconds"},
			}}, nil
		}
		switch s.Type() {
		case avro.String:
			return map[string]any{"type": "string"}, nil
		case avro.Int:
			return map[string]any{"type": "integer", "minimum": -2147483648, "maximum": 2147483647}, nil
		case avro.Long:
			return map[string]any{"type": "integer"}, nil
		case avro.Float, avro.Double:
			return map[string]any{"type": "number"}, nil
		case avro.Boolean:
			return map[string]any{"type": "boolean"}, nil
		case avro.Null:
			return map[string]any{"type": "null"}, nil
		}
	}
	return nil, fmt.Errorf("avro type %s has no JSON form in the API", s.Type())
}

func nullable(s avro.Schema) bool {
	u, ok := s.(*avro.UnionSchema)
	return ok && u.Nullable()
}

// getOpenAPI is GET /openapi.json.
func (s *Server) getOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.openapi)
}

// getDocs is GET /docs: the interactive API reference (Swagger UI, see docs.go).
func (s *Server) getDocs(c *fiber.Ctx) error {
	setDocsHeaders(c)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(docsPage)
}
