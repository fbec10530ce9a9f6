package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// errEnough stops a read at MaxDeadLetters.
var errEnough = errors.New("enough")

// readDLQ reads dead-letter topic from its start to its current end (read_committed),
// as `sluice dlq` does, at most MaxDeadLetters records; truncated says it stopped early.
func (c *Console) readDLQ(ctx context.Context, topic string) (recs []*kgo.Record, truncated bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = kafka.ReadCommitted(ctx, c.o.Kafka, topic, nil, func(r *kgo.Record) error {
		if len(recs) >= c.o.MaxDeadLetters {
			return errEnough
		}
		recs = append(recs, r)
		return nil
	})
	if errors.Is(err, errEnough) {
		return recs, true, nil
	}
	return recs, false, err
}

func (c *Console) dlqTopics() []string {
	var ts []string
	for _, t := range c.o.Pipeline.Topics {
		ts = append(ts, wire.DLQTopic(t.Name))
	}
	return ts
}

// topicSummary is one dead-letter topic's row.
type topicSummary struct {
	Topic     string
	Depth     int
	Truncated bool
	Oldest    time.Time
	OldestAge time.Duration
	ByClass   string
	Err       string
}

func (c *Console) summaries(ctx context.Context) []topicSummary {
	var out []topicSummary
	for _, t := range c.dlqTopics() {
		recs, trunc, err := c.readDLQ(ctx, t)
		row := topicSummary{Topic: t, Truncated: trunc}
		if err != nil {
			row.Err = err.Error()
		}
		s := dlq.Summarize(recs, c.o.Now(), 0)
		row.Depth, row.Oldest, row.OldestAge = s.Total, s.Oldest, s.OldestAge
		var cls []string
		for k, n := range s.ByClass {
			cls = append(cls, fmt.Sprintf("%s: %d", k, n))
		}
		sort.Strings(cls)
		row.ByClass = strings.Join(cls, ", ")
		out = append(out, row)
	}
	return out
}

// query is the dead-letter filter of a request: the replay filter of `sluice dlq
// replay` (class, stage, time range) plus a text to find in the error.
type query struct {
	Topic   string
	Class   string
	Stage   string
	Text    string
	Since   string
	Until   string
	filter  dlq.Filter
	Encoded string // the query string of the filter, for links and forms
}

// parseQuery reads the filter of form values v.
func (c *Console) parseQuery(v url.Values) (query, error) {
	q := query{Topic: v.Get("topic"), Class: strings.TrimSpace(v.Get("class")), Stage: strings.TrimSpace(v.Get("stage")),
		Text: strings.TrimSpace(v.Get("text")), Since: v.Get("since"), Until: v.Get("until")}
	if q.Topic == "" {
		q.Topic = c.dlqTopics()[0]
	}
	if !slices.Contains(c.dlqTopics(), q.Topic) {
		return q, fmt.Errorf("%q is not a dead-letter topic of this pipeline", q.Topic)
	}
	split := func(s string) []string {
		var out []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	q.filter.Classes, q.filter.Stages = split(q.Class), split(q.Stage)
	var err error
	if q.filter.Since, err = parseTime(q.Since); err != nil {
		return q, fmt.Errorf("since: %w", err)
	}
	if q.filter.Until, err = parseTime(q.Until); err != nil {
		return q, fmt.Errorf("until: %w", err)
	}
	if !q.filter.Since.IsZero() && !q.filter.Until.IsZero() && !q.filter.Since.Before(q.filter.Until) {
		return q, errors.New("since must be before until")
	}
	e := url.Values{}
	for k, val := range map[string]string{"topic": q.Topic, "class": q.Class, "stage": q.Stage, "text": q.Text, "since": q.Since, "until": q.Until} {
		if val != "" {
			e.Set(k, val)
		}
	}
	q.Encoded = e.Encode()
	return q, nil
}

// parseTime accepts RFC 3339 and the browser's datetime-local form (UTC).
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339 or 2006-01-02T15:04, UTC)", s)
}

// match is the filter: dlq.Filter.Match (as `sluice dlq replay`) and the error text.
func (q query) match(r *kgo.Record) bool {
	if !q.filter.Match(r) {
		return false
	}
	if q.Text == "" {
		return true
	}
	return strings.Contains(strings.ToLower(wire.Header(r, wire.HeaderError)), strings.ToLower(q.Text))
}

func recordID(r *kgo.Record) string { return fmt.Sprintf("%d@%d", r.Partition, r.Offset) }

// row is one dead letter in the list.
type row struct {
	ID           string
	Partition    int32
	Offset       int64
	Key          string
	Class        string
	Stage        string
	Error        string
	FirstFailure time.Time
	Original     string
	Replayed     time.Time
}

func (c *Console) toRow(topic string, r *kgo.Record) row {
	at, _ := wire.FirstFailure(r)
	return row{ID: recordID(r), Partition: r.Partition, Offset: r.Offset, Key: string(r.Key),
		Class: wire.Header(r, wire.HeaderClass), Stage: wire.Header(r, wire.HeaderStage), Error: wire.Header(r, wire.HeaderError),
		FirstFailure: at, Original: wire.Header(r, wire.HeaderOriginalTopic), Replayed: c.replayedAt(topic, r)}
}

func (c *Console) replayedAt(topic string, r *kgo.Record) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replayed[topic+"/"+recordID(r)]
}

// maxRows bounds the list on the page (the filter and its replay still cover all).
const maxRows = 500

type listData struct {
	Query     query
	Rows      []row
	Matched   int
	Read      int
	Truncated bool
	Err       string
	Topics    []string
}

func (c *Console) list(ctx context.Context, v url.Values) listData {
	d := listData{Topics: c.dlqTopics()}
	q, err := c.parseQuery(v)
	d.Query = q
	if err != nil {
		d.Err = err.Error()
		return d
	}
	recs, trunc, err := c.readDLQ(ctx, q.Topic)
	d.Read, d.Truncated = len(recs), trunc
	if err != nil {
		d.Err = err.Error()
		return d
	}
	for _, r := range recs {
		if !q.match(r) {
			continue
		}
		d.Matched++
		if len(d.Rows) < maxRows {
			d.Rows = append(d.Rows, c.toRow(q.Topic, r))
		}
	}
	return d
}

// getDLQ is GET /dlq: the summary of every dead-letter topic and the filtered list of
// one (by default the first that holds dead letters).
func (c *Console) getDLQ(w http.ResponseWriter, r *http.Request) {
	sums := c.summaries(r.Context())
	q := r.URL.Query()
	if q.Get("topic") == "" {
		for _, s := range sums {
			if s.Depth > 0 {
				q.Set("topic", s.Topic)
				break
			}
		}
	}
	c.render(w, r, "dlq", "Dead letters", map[string]any{"Summaries": sums, "List": c.list(r.Context(), q)})
}

func (c *Console) getDLQSummary(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "dlqsummary", "Dead letters", c.summaries(r.Context()))
}

func (c *Console) getDLQList(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "dlqlist", "Dead letters", c.list(r.Context(), r.URL.Query()))
}

// recordView is one dead letter in full.
type recordView struct {
	Topic   string
	Row     row
	Headers [][2]string
	Value   string
	Decoded bool
	Note    string
}

// getDLQRecord is GET /dlq/record?topic=&partition=&offset=.
func (c *Console) getDLQRecord(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	p, perr := strconv.ParseInt(r.URL.Query().Get("partition"), 10, 32)
	o, oerr := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if !slices.Contains(c.dlqTopics(), topic) || perr != nil || oerr != nil {
		c.fail(w, r, http.StatusBadRequest, "Give topic (a dead-letter topic of this pipeline), partition and offset.")
		return
	}
	rec, err := c.findOne(r.Context(), topic, int32(p), o)
	if err != nil {
		c.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	v := recordView{Topic: topic, Row: c.toRow(topic, rec)}
	for _, h := range rec.Headers {
		v.Headers = append(v.Headers, [2]string{h.Key, string(h.Value)})
	}
	v.Value, v.Decoded, v.Note = decodeValue(r.Context(), c.o.Registry, rec.Value)
	c.render(w, r, "record", "Dead letters", v)
}

// decodeValue returns the record value as indented JSON when the registry decodes it,
// else as text (or base64 when it is not UTF-8), with why.
func decodeValue(ctx context.Context, reg *schema.Registry, b []byte) (string, bool, string) {
	if b == nil {
		return "", false, "no value (null)"
	}
	v, _, err := reg.Decode(ctx, b)
	if err == nil {
		out, jerr := marshalText(schema.ToJSON(v), "  ")
		if jerr == nil {
			return out, true, ""
		}
		err = jerr
	}
	if utf8.Valid(b) {
		return string(b), false, "not decoded (" + err.Error() + "): shown as text"
	}
	return base64.StdEncoding.EncodeToString(b), false, "not decoded (" + err.Error() + "): shown as base64"
}

// findOne returns the dead letter at topic/partition@offset, or an error that says it
// is not there.
func (c *Console) findOne(ctx context.Context, topic string, p int32, o int64) (*kgo.Record, error) {
	recs, _, err := c.readDLQ(ctx, topic)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Partition == p && r.Offset == o {
			return r, nil
		}
	}
	return nil, fmt.Errorf("No dead letter at %s partition %d offset %d: the offset is unknown (never written, deleted by retention, or part of an aborted transaction).", topic, p, o)
}

// replayData is the confirmation or the result of a replay.
type replayData struct {
	Topic    string
	Mode     string // "selected" or "filter"
	Selected []string
	Query    query
	Count    int
	Rows     []row
	Done     bool
	Replayed int
	Problems []string
	Err      string
}

// postReplay is POST /dlq/replay: without confirm=yes it answers a confirmation that
// says how many records would be replayed; with it, it replays them through
// dlq.Replay (the code of `sluice dlq replay`) and shows the result.
func (c *Console) postReplay(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	q, err := c.parseQuery(f)
	d := replayData{Topic: q.Topic, Mode: f.Get("mode"), Selected: f["sel"], Query: q}
	if err != nil {
		d.Err = err.Error()
		c.renderStatus(w, r, http.StatusBadRequest, "replay", "Dead letters", d)
		return
	}
	recs, _, err := c.readDLQ(r.Context(), q.Topic)
	if err != nil {
		d.Err = err.Error()
		c.renderStatus(w, r, http.StatusBadGateway, "replay", "Dead letters", d)
		return
	}
	var chosen []*kgo.Record
	switch d.Mode {
	case "selected":
		if len(d.Selected) == 0 {
			d.Err = "No record selected: tick the records to replay, or replay the whole filter."
			break
		}
		byID := map[string]*kgo.Record{}
		for _, r := range recs {
			byID[recordID(r)] = r
		}
		for _, id := range d.Selected {
			rec, ok := byID[id]
			if !ok {
				d.Problems = append(d.Problems, fmt.Sprintf("No dead letter at %s %s (partition@offset): the offset is unknown.", q.Topic, id))
				continue
			}
			chosen = append(chosen, rec)
		}
	case "filter":
		for _, r := range recs {
			if q.match(r) {
				chosen = append(chosen, r)
			}
		}
	default:
		d.Err = "mode must be selected or filter"
	}
	var fresh []*kgo.Record
	for _, rec := range chosen {
		if at := c.replayedAt(q.Topic, rec); !at.IsZero() {
			d.Problems = append(d.Problems, fmt.Sprintf("%s %s was already replayed at %s by this console; it is not replayed again.",
				q.Topic, recordID(rec), at.UTC().Format(time.RFC3339)))
			continue
		}
		fresh = append(fresh, rec)
	}
	d.Count = len(fresh)
	for _, rec := range fresh {
		if len(d.Rows) < maxRows {
			d.Rows = append(d.Rows, c.toRow(q.Topic, rec))
		}
	}
	if d.Err != "" || (d.Mode == "selected" && len(d.Problems) > 0) || d.Count == 0 {
		if d.Err == "" && d.Count == 0 && len(d.Problems) == 0 {
			d.Err = "Nothing to replay: no dead letter matches."
		}
		c.renderStatus(w, r, http.StatusConflict, "replay", "Dead letters", d)
		return
	}
	if f.Get("confirm") != "yes" {
		c.render(w, r, "replay", "Dead letters", d)
		return
	}
	if want, err := strconv.Atoi(f.Get("count")); err != nil || want != d.Count {
		d.Err = fmt.Sprintf("The selection changed since the confirmation (%s then, %d now): confirm again.", f.Get("count"), d.Count)
		c.renderStatus(w, r, http.StatusConflict, "replay", "Dead letters", d)
		return
	}
	p, err := c.replayProducer()
	if err == nil {
		var n int
		n, err = dlq.Replay(r.Context(), p, fresh, "", dlq.Filter{})
		d.Replayed = n
	}
	if err != nil {
		d.Err = "Replay failed: " + err.Error() + ". Some records may have been written; replaying again is safe (the clean stage deduplicates by event id)."
		c.renderStatus(w, r, http.StatusBadGateway, "replay", "Dead letters", d)
		return
	}
	now := c.o.Now()
	c.mu.Lock()
	for _, rec := range fresh {
		c.replayed[q.Topic+"/"+recordID(rec)] = now
	}
	c.mu.Unlock()
	c.o.Logger.Info("console: replayed dead letters", "topic", q.Topic, "replayed", d.Replayed, "mode", d.Mode)
	d.Done = true
	c.render(w, r, "replay", "Dead letters", d)
}

func (c *Console) replayProducer() (*kafka.Producer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.producer != nil {
		return c.producer, nil
	}
	kc := c.o.Kafka
	kc.ClientID = wire.ClientID("console-replay")
	p, err := kafka.NewProducer(kc, kafka.ProducerOptions{})
	if err != nil {
		return nil, err
	}
	c.producer = p
	return p, nil
}

// marshalText is JSON for reading: "<" stays "<" (the page escapes it as HTML, and
// \u003c would hide what the record holds); indent "" is compact.
func marshalText(v any, indent string) (string, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
