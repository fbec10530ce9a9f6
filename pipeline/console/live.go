package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/fanout"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// latestPerAgg is how many of the newest results the Windows page shows per aggregation.
const latestPerAgg = 20

// result is one record shown on the Windows and Events pages.
type result struct {
	Partition int32
	Offset    int64
	Timestamp time.Time
	Key       string
	Value     string
}

type aggView struct {
	Name    string
	Topic   string
	Late    string
	Results []result
	Err     string
}

// getWindows is GET /windows: per aggregation its newest results (read back from the
// end of agg.<name>) and its late-event count; new results arrive live (/live).
func (c *Console) getWindows(w http.ResponseWriter, r *http.Request) {
	cur, _ := c.scrape(r.Context())
	var views []aggView
	for _, a := range c.o.Pipeline.Aggregations {
		v := aggView{Name: a.Name, Topic: wire.AggTopic(a.Name), Late: cur.get(`sluice_late_events_total{aggregation="` + a.Name + `"}`)}
		if v.Late == "" {
			v.Late = "0"
		}
		res, err := c.latest(r.Context(), v.Topic, latestPerAgg)
		if err != nil {
			v.Err = err.Error()
		}
		v.Results = res
		views = append(views, v)
	}
	c.render(w, r, "windows", "Windows", views)
}

// latest reads the newest n committed records of topic (n from each partition's end,
// newest first overall, at most n).
func (c *Console) latest(ctx context.Context, topic string, n int) ([]result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	starts, err := c.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ends, err := c.adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []result
	for p, e := range ends[topic] {
		if e.Err != nil {
			return nil, e.Err
		}
		from := max(e.Offset-int64(n), 0)
		if s, ok := starts.Lookup(topic, p); ok && s.Offset > from {
			from = s.Offset
		}
		if from >= e.Offset {
			continue
		}
		err := kafka.ReadCommittedFrom(ctx, c.o.Kafka, topic, p, from, func(r *kgo.Record) error {
			out = append(out, c.toResult(ctx, r))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timestamp.After(out[j].Timestamp) })
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func (c *Console) toResult(ctx context.Context, r *kgo.Record) result {
	v, _, _ := decodeValue(ctx, c.o.Registry, r.Value)
	return result{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(), Key: string(r.Key), Value: compact(v)}
}

func compact(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	out, err := marshalText(v, "")
	if err != nil {
		return s
	}
	return out
}

// liveTopics are the topics /live streams: clean and aggregate topics.
func (c *Console) liveTopics() []string {
	var ts []string
	for _, t := range c.o.Pipeline.Topics {
		ts = append(ts, wire.CleanTopic(t.Name))
	}
	for _, a := range c.o.Pipeline.Aggregations {
		ts = append(ts, wire.AggTopic(a.Name))
	}
	return ts
}

// getEvents is GET /events: tail a clean topic live, with a field=value filter.
func (c *Console) getEvents(w http.ResponseWriter, r *http.Request) {
	var clean []string
	for _, t := range c.o.Pipeline.Topics {
		clean = append(clean, wire.CleanTopic(t.Name))
	}
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		topic = clean[0]
	}
	d := map[string]any{"Topics": clean, "Topic": topic, "Filter": r.URL.Query().Get("filter")}
	if !slices.Contains(clean, topic) {
		d["Err"] = fmt.Sprintf("%q is not a clean topic of this pipeline", topic)
	}
	c.render(w, r, "events", "Events", d)
}

// liveMessage is one Server-Sent Event of /live.
type liveMessage struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp string `json:"timestamp"`
	Key       string `json:"key"`
	Value     any    `json:"value"`
	Error     string `json:"error,omitempty"`
}

// getLive is GET /live?topic=&filter=field=value: the topic's new records as
// Server-Sent Events, through the fanout hub that also serves the API's WebSocket stream
// (/api/v1/stream/{topic}), with the same filter: a record passes when its top-level
// field equals value.
func (c *Console) getLive(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if !slices.Contains(c.liveTopics(), topic) {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("%q is not a clean or aggregate topic of this pipeline", topic))
		return
	}
	field, want, hasFilter := strings.Cut(r.URL.Query().Get("filter"), "=")
	if r.URL.Query().Get("filter") != "" && (!hasFilter || field == "") {
		c.fail(w, r, http.StatusBadRequest, "filter must be field=value")
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		c.fail(w, r, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch, cancel, err := c.hub.Subscribe(r.Context(), topic, fanout.Limits{})
	if err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "cannot read "+topic+": "+err.Error())
		return
	}
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": subscribed\n\n")
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Err != nil {
				fmt.Fprintf(w, "event: end\ndata: %q\n\n", m.Err.Error())
				fl.Flush()
				return
			}
			if hasFilter {
				obj, _ := m.Value.(map[string]any)
				if obj == nil || fmt.Sprint(obj[field]) != want {
					continue
				}
			}
			lm := liveMessage{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
				Timestamp: m.Timestamp.UTC().Format(time.RFC3339Nano), Key: string(m.Key), Value: m.Value}
			if m.DecodeErr != nil {
				lm.Error = m.DecodeErr.Error()
			}
			b, err := json.Marshal(lm)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "data: %s\n\n", b)
			fl.Flush()
		}
	}
}
