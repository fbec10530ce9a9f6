package sink

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Avro fields of an aggregate result (schema.Aggregate) that AGGREGATES has columns for;
// every other field (count, the measures, final) goes into MEASURES.
const (
	aggFieldAggregation = "aggregation"
	aggFieldGroup       = "group"
	aggFieldStart       = "window_start"
	aggFieldEnd         = "window_end"
	aggFieldEmittedAt   = "emitted_at"
	eventIDField        = "event_id"
)

// stageRows converts a batch's rows to staging-table arguments (batch id, offset, then
// the target's columns in order). Within the batch, the first row of an event id wins
// (as across batches) and the last result of a window wins. Every row that does not fit
// is listed in one *RejectedError.
func (t *tableDef) stageRows(b *Batch) ([][]any, error) {
	out := make([][]any, 0, len(b.Rows))
	pos := make(map[string]int, len(b.Rows)) // dedup key -> index in out
	var rejected []RowError
	for i := range b.Rows {
		r := &b.Rows[i]
		var (
			vals []any
			key  string
			id   string
			err  error
		)
		if t.aggregate {
			vals, key, err = t.aggregateValues(b, r)
			id = r.EventID
		} else {
			vals, id, err = t.eventValues(b, r)
			key = id
		}
		if err != nil {
			rejected = append(rejected, RowError{Offset: r.Offset, EventID: id, Err: err})
			continue
		}
		args := make([]any, 0, len(stageColumns)+len(vals))
		args = append(args, b.Topic, b.Partition, b.Start, b.Epoch, r.Offset)
		args = append(args, vals...)
		if j, dup := pos[key]; dup {
			if t.conflict == ConflictReplace {
				out[j] = args
			}
			continue
		}
		pos[key] = len(out)
		out = append(out, args)
	}
	if len(rejected) > 0 {
		return nil, &RejectedError{Table: t.name, Rows: rejected}
	}
	return out, nil
}

// eventValues maps a record to the event table's columns by upper-cased field name and
// returns them with the row's event id (header first, else the event_id field; both set
// and different is an error).
func (t *tableDef) eventValues(b *Batch, r *Row) ([]any, string, error) {
	id := r.EventID
	vals := make([]any, len(t.cols))
	set := make([]bool, len(t.cols))
	var errs []string
	for k, v := range r.Values {
		name := strings.ToUpper(k)
		i, ok := t.index[name]
		switch {
		case !ok || name == ColRecordMetadata:
			errs = append(errs, fmt.Sprintf("%s: no column %s in %s", k, name, t.name))
			continue
		case set[i]:
			errs = append(errs, fmt.Sprintf("%s: column %s given twice", k, name))
			continue
		}
		set[i] = true
		if name == ColEventID {
			s, isStr := v.(string)
			switch {
			case v == nil:
			case !isStr:
				errs = append(errs, fmt.Sprintf("%s: %T, want string", k, v))
			case id == "":
				id = s
			case s != id:
				errs = append(errs, fmt.Sprintf("%s: %q differs from the sluice-event-id header %q", k, s, id))
			}
			continue
		}
		cv, err := convertValue(t.cols[i].Type, v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		vals[i] = cv
	}
	switch {
	case id == "":
		errs = append(errs, "no event id (sluice-event-id header or event_id field)")
	case !utf8.ValidString(id):
		errs = append(errs, "event id: "+errInvalidUTF8.Error())
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, id, errors.New(strings.Join(errs, "; "))
	}
	vals[t.index[ColEventID]] = id
	vals[t.index[ColRecordMetadata]] = metadataJSON(b, r, id)
	return vals, id, nil
}

// aggregateValues maps a window result (schema.Aggregate) to AGGREGATES and returns it
// with its window key. GROUP_KEY is the group map as JSON with sorted keys, so equal
// groups give equal keys.
func (t *tableDef) aggregateValues(b *Batch, r *Row) ([]any, string, error) {
	var errs []string
	name, ok := r.Values[aggFieldAggregation].(string)
	if !ok || name == "" || !utf8.ValidString(name) {
		errs = append(errs, aggFieldAggregation+": want a non-empty UTF-8 string")
	}
	group := "{}"
	if g := r.Values[aggFieldGroup]; g != nil {
		switch g.(type) {
		case map[string]any, map[string]string:
			s, err := jsonText(g)
			if err != nil {
				errs = append(errs, aggFieldGroup+": "+err.Error())
			}
			group = s
		default:
			errs = append(errs, fmt.Sprintf("%s: %T, want a map", aggFieldGroup, g))
		}
	}
	times := make(map[string]time.Time, 3)
	for _, f := range []string{aggFieldStart, aggFieldEnd, aggFieldEmittedAt} {
		v, err := convertValue(ColumnType{Kind: KindTimestamp}, r.Values[f])
		ts, ok := v.(time.Time)
		switch {
		case err != nil:
			errs = append(errs, f+": "+err.Error())
		case !ok:
			errs = append(errs, f+": want a timestamp, not null")
		}
		times[f] = ts
	}
	measures := make(map[string]any, len(r.Values))
	for k, v := range r.Values {
		switch k {
		case aggFieldAggregation, aggFieldGroup, aggFieldStart, aggFieldEnd, aggFieldEmittedAt:
		default:
			measures[k] = v
		}
	}
	ms, err := jsonText(measures)
	if err != nil {
		errs = append(errs, "measures: "+err.Error())
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, "", errors.New(strings.Join(errs, "; "))
	}
	byName := map[string]any{
		"AGGREGATION":     name,
		"GROUP_KEY":       group,
		"WINDOW_START":    times[aggFieldStart],
		"WINDOW_END":      times[aggFieldEnd],
		"MEASURES":        ms,
		"EMITTED_AT":      times[aggFieldEmittedAt],
		ColRecordMetadata: metadataJSON(b, r, r.EventID),
	}
	vals := make([]any, len(t.cols))
	for i, c := range t.cols {
		vals[i] = byName[c.Name]
	}
	key := fmt.Sprintf("%s\x00%s\x00%d\x00%d", name, group,
		times[aggFieldStart].UnixNano(), times[aggFieldEnd].UnixNano())
	return vals, key, nil
}
