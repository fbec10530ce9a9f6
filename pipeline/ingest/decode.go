package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-json"
)

// bodyFormat is how a request body holds its events.
type bodyFormat int

const (
	formatJSON   bodyFormat = iota + 1 // one object or an array of objects
	formatNDJSON                       // one object per line
)

// Media types accepted by POST /api/v1/events/{topic}.
const (
	mediaJSON   = "application/json"
	mediaNDJSON = "application/x-ndjson"
)

// bodyFormatOf maps a Content-Type header to a body format; ok is false for anything
// else, including a charset other than UTF-8 (JSON is UTF-8, RFC 8259).
func bodyFormatOf(contentType string) (bodyFormat, bool) {
	if contentType == "" {
		return 0, false
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return 0, false
	}
	switch mt {
	case mediaJSON:
		return formatJSON, true
	case mediaNDJSON:
		return formatNDJSON, true
	}
	return 0, false
}

// eventProblem is one problem of one event that could not be turned into a plain event:
// not a JSON object, or (CloudEvents) an envelope attribute that is missing or wrong.
type eventProblem struct {
	index   int
	field   string // empty when the event as a whole is wrong
	message string
}

// batch is the events of one request. events[i] is nil where problems has an entry
// (or several) for i.
type batch struct {
	events   []map[string]any
	problems []eventProblem
	// single is true when the body was one JSON object rather than a list.
	single bool
}

// decodeBody splits body into events. A failure of the whole request is a *requestError
// (empty, not JSON, too many events); an event that is not a JSON object is an
// eventProblem. Every value is decoded once, numbers as json.Number.
func decodeBody(f bodyFormat, body []byte) (batch, *requestError) {
	// JSON never holds a raw NUL byte, and the decoder uses NUL as its end-of-buffer
	// sentinel, so reject it up front rather than let it truncate the input.
	if i := bytes.IndexByte(body, 0); i >= 0 {
		return batch{}, errInvalidBody(fmt.Sprintf("invalid JSON: NUL byte at offset %d", i))
	}
	if len(trimSpace(body)) == 0 {
		return batch{}, errInvalidBody("the body is empty")
	}
	// JSON is UTF-8 (RFC 8259). Checking up front also keeps the decoder away from its
	// invalid-UTF-8 repair path, which can panic (goccy/go-json issues 424 and 609).
	if !utf8.Valid(body) {
		return batch{}, errInvalidBody("the body is not valid UTF-8")
	}
	if f == formatNDJSON {
		return decodeNDJSON(body)
	}
	v, err := decodeOne(body)
	if err != nil {
		return batch{}, errInvalidBody("invalid JSON: " + err.Error())
	}
	switch v := v.(type) {
	case map[string]any:
		return batch{events: []map[string]any{v}, single: true}, nil
	case []any:
		if len(v) == 0 {
			return batch{}, errInvalidBody("the batch is empty")
		}
		if len(v) > MaxEventsPerRequest {
			return batch{}, errTooManyEvents(len(v))
		}
		b := batch{events: make([]map[string]any, len(v))}
		for i, e := range v {
			obj, ok := e.(map[string]any)
			if !ok {
				b.problems = append(b.problems, eventProblem{index: i, message: "must be a JSON object, got " + jsonKind(e)})
				continue
			}
			b.events[i] = obj
		}
		return b, nil
	}
	return batch{}, errInvalidBody("the body must be a JSON object or an array of objects, got " + jsonKind(v))
}

// decodeNDJSON decodes one JSON object per non-blank line.
func decodeNDJSON(body []byte) (batch, *requestError) {
	var lines [][]byte
	for rest := body; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if line = trimSpace(line); len(line) > 0 {
			if len(lines) == MaxEventsPerRequest {
				return batch{}, errTooManyEvents(len(lines) + 1)
			}
			lines = append(lines, line)
		}
	}
	b := batch{events: make([]map[string]any, len(lines))}
	var names map[string]string // field names, shared by the lines
	for i, line := range lines {
		v, err := decodeOneNames(line, &names)
		if err != nil {
			b.problems = append(b.problems, eventProblem{index: i, message: "invalid JSON: " + err.Error()})
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			b.problems = append(b.problems, eventProblem{index: i, message: "must be a JSON object, got " + jsonKind(v)})
			continue
		}
		b.events[i] = obj
	}
	return b, nil
}

// decodeOne decodes exactly one JSON value from b (numbers as json.Number); anything but
// whitespace after it is an error. b must not contain NUL bytes.
func decodeOne(b []byte) (v any, err error) {
	var names map[string]string
	return decodeOneNames(b, &names)
}

// decodeOneNames is decodeOne with the fast parser's field-name cache kept in *names.
func decodeOneNames(b []byte, names *map[string]string) (v any, err error) {
	if v, ok := parseFastNames(b, names); ok {
		return v, nil
	}
	return decodeGeneral(b)
}

// decodeGeneral is decodeOne without the fast path: goccy/go-json.
func decodeGeneral(b []byte) (v any, err error) {
	// Last guard: a decoder bug on hostile input is still the input's fault (400).
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, errors.New("malformed JSON")
		}
	}()
	r := bytes.NewReader(b)
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, shortError(err)
	}
	// What follows the value is what the decoder buffered plus what it has not read.
	if !onlySpace(dec.Buffered()) || len(trimSpace(b[len(b)-r.Len():])) > 0 {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

// onlySpace reports whether r holds nothing but JSON whitespace.
func onlySpace(r io.Reader) bool {
	var buf [256]byte
	for {
		n, err := r.Read(buf[:])
		for _, c := range buf[:n] {
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
		}
		if err != nil {
			return true
		}
	}
}

// shortError bounds the length of a decoder message quoted back to the client.
func shortError(err error) error { return errors.New(truncate(err.Error())) }

// truncate bounds a message quoted back to the client to about 200 bytes, cutting at
// a rune boundary.
func truncate(msg string) string {
	const max = 200
	if len(msg) <= max {
		return msg
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "..."
}

// jsonKind names the JSON type of a decoded value for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number, float64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// trimSpace trims JSON whitespace (space, tab, CR, LF) from both ends of b.
func trimSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }
