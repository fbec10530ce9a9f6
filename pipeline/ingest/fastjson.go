package ingest

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// parseFast parses b as exactly one JSON value (then only whitespace) into the values
// the general decoder gives with UseNumber: map[string]any, []any, json.Number, string,
// bool and nil. It handles the common shape of event bodies (no escapes in strings,
// nesting at most fastMaxDepth deep) and declines everything else with ok false: the
// caller then decodes with the general decoder, which also words the errors. So it never
// accepts what the general decoder refuses, and never decodes anything differently
// (FuzzParseFastMatchesDecoder holds it to that).
//
// It exists for speed: the general decoder goes through reflection, grows every event's
// map from empty, and allocates each field name of each event again; parsing event
// bodies was the largest single CPU cost of ingest. Strings that are not valid UTF-8
// are declined too.
func parseFast(b []byte) (v any, ok bool) {
	var names map[string]string
	return parseFastNames(b, &names)
}

// parseFastNames is parseFast sharing the field-name cache *names across calls (the
// lines of one NDJSON body).
func parseFastNames(b []byte, names *map[string]string) (v any, ok bool) {
	p := fastParser{b: b, names: *names}
	defer func() { *names = p.names }()
	p.space()
	v, ok = p.value(0)
	if !ok {
		return nil, false
	}
	p.space()
	if p.i != len(b) {
		return nil, false
	}
	return v, true
}

// fastMaxDepth bounds the nesting parseFast handles; deeper input goes to the general
// decoder.
const fastMaxDepth = 32

// fastMapHint presizes each object's map: event objects mostly have 8-16 fields, and a
// map that grows past 8 entries is rebuilt once.
const fastMapHint = 16

type fastParser struct {
	b []byte
	i int
	// names interns object keys: the events of one body repeat the same field names.
	names map[string]string
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) value(depth int) (any, bool) {
	if p.i >= len(p.b) || depth > fastMaxDepth {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, ok := p.str()
		if !ok {
			return nil, false
		}
		return string(s), true
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, false
}

func (p *fastParser) literal(word string) bool {
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return false
	}
	p.i += len(word)
	return true
}

// str reads a string without escapes or control characters and returns its bytes
// (without the quotes); anything else declines.
func (p *fastParser) str() ([]byte, bool) {
	start := p.i + 1
	ascii := true
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := p.b[start:j]
			if !ascii && !utf8.Valid(s) {
				return nil, false // the general decoder repairs or refuses it
			}
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// number reads a JSON number exactly as the grammar of RFC 8259 has it.
func (p *fastParser) number() (any, bool) {
	b, start, j := p.b, p.i, p.i
	if b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	default:
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	exp := false
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		exp = true
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || b[j] < '0' || b[j] > '9' {
			return nil, false
		}
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	}
	// A number must end at a delimiter; "1x" or "01" is the general decoder's to word.
	if j < len(b) {
		switch b[j] {
		case ' ', '\t', '\n', '\r', ',', ']', '}':
		default:
			return nil, false
		}
	}
	// The general decoder refuses a number outside float64's range ("1e400") even as a
	// json.Number. Only an exponent or hundreds of digits can get there.
	if exp || j-start > 300 {
		if _, err := strconv.ParseFloat(string(b[start:j]), 64); err != nil {
			return nil, false
		}
	}
	p.i = j
	return json.Number(b[start:j]), true
}

func (p *fastParser) object(depth int) (any, bool) {
	p.i++ // {
	m := make(map[string]any, fastMapHint)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, true
	}
	for {
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, false
		}
		kb, ok := p.str()
		if !ok {
			return nil, false
		}
		key, ok := p.names[string(kb)]
		if !ok {
			if p.names == nil {
				p.names = make(map[string]string, fastMapHint)
			}
			key = string(kb)
			p.names[key] = key
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, false
		}
		p.i++
		p.space()
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[key] = v
		end, ok := p.separator('}')
		if !ok {
			return nil, false
		}
		if end {
			return m, true
		}
	}
}

func (p *fastParser) array(depth int) (any, bool) {
	p.i++ // [
	a := []any{}
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		end, ok := p.separator(']')
		if !ok {
			return nil, false
		}
		if end {
			return a, true
		}
	}
}

// separator reads what follows a member of an object or array: a comma (end false) or
// the closing byte (end true); anything else is not ok.
func (p *fastParser) separator(closing byte) (end, ok bool) {
	p.space()
	if p.i >= len(p.b) {
		return false, false
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		p.space()
		return false, true
	case closing:
		p.i++
		return true, true
	}
	return false, false
}
