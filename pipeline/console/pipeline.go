package console

import (
	"bufio"
	"context"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// edge is one stage of the topology: what it reads, what it writes.
type edge struct {
	Inputs  []string
	Stage   string
	Group   string
	Outputs []string
}

// topology lists the pipeline's stages from the pipeline file.
func topology(p *config.Pipeline) []edge {
	var es []edge
	var raws []string
	for _, t := range p.Topics {
		raws = append(raws, t.Name)
	}
	var outs []string
	for _, t := range p.Topics {
		outs = append(outs, wire.CleanTopic(t.Name), wire.DLQTopic(t.Name))
	}
	es = append(es, edge{Inputs: raws, Stage: wire.StageClean, Group: wire.GroupID(wire.StageClean), Outputs: outs})
	es = append(es, edge{Inputs: []string{wire.RetryTopicPrefix + "*"}, Stage: wire.StageRetry, Group: wire.GroupID(wire.StageRetry), Outputs: []string{"(the original topics)"}})
	for _, a := range p.Aggregations {
		es = append(es, edge{Inputs: []string{wire.CleanTopic(a.From)}, Stage: "repartition " + a.Name,
			Group: wire.GroupID(wire.StageRepartition(a.Name)), Outputs: []string{wire.RepartitionTopic(a.Name)}})
		es = append(es, edge{Inputs: []string{wire.RepartitionTopic(a.Name)}, Stage: "aggregate " + a.Name,
			Group: wire.GroupID(wire.StageAggregate(a.Name)), Outputs: []string{wire.AggTopic(a.Name), wire.LateTopic(a.From)}})
	}
	var sinkIn []string
	for _, t := range p.Topics {
		sinkIn = append(sinkIn, wire.CleanTopic(t.Name))
	}
	for _, a := range p.Aggregations {
		sinkIn = append(sinkIn, wire.AggTopic(a.Name))
	}
	es = append(es, edge{Inputs: sinkIn, Stage: wire.StageSink, Group: wire.GroupID(wire.StageSink), Outputs: []string{"(warehouse)"}})
	return es
}

// lagRow is one partition of one stage's input.
type lagRow struct {
	Group     string
	Topic     string
	Partition int32
	Committed int64
	End       int64
	Lag       int64
	// In and Consumed are this partition's rates since the previous refresh, from the
	// offsets: records/s arriving (end offset) and committed by the stage; a
	// transaction's commit marker takes an offset of each partition it wrote, so it
	// counts as one record. "…" on the first refresh.
	In, Consumed string
	Rate         string // input records/s of the stage on this topic (all partitions), from metrics
}

// offsetsAt is one partition's end and committed offsets at one refresh.
type offsetsAt struct {
	at          time.Time
	end, commit int64
}

// offsetRate is the rate between two offsets dt apart, "…" when unknown.
func offsetRate(now, before int64, dt float64, ok bool) string {
	if !ok || dt <= 0 || before < 0 || now < before {
		return "…"
	}
	return strconv.FormatFloat(float64(now-before)/dt, 'f', 1, 64)
}

// aggRow is one partition of one aggregation, from the processor's metrics.
type aggRow struct {
	Aggregation   string
	Partition     string
	StreamLag     string
	Watermark     string
	OpenWindows   string
	Late, Results string
}

// stageRow is one stage's transactions, from metrics.
type stageRow struct {
	Stage              string
	Committed, Aborted string
	DeadLetters        string
	Open               string // age of the transaction open now (s), "" when none
}

type pipelineStats struct {
	At          time.Time
	Lag         []lagRow
	LagErr      string
	Idle        int // partitions without any record, not listed
	Aggs        []aggRow
	Stages      []stageRow
	MetricsErr  string
	MetricsURLs []string
}

func (c *Console) getPipeline(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "pipeline", "Pipeline", map[string]any{"Topology": topology(c.o.Pipeline), "Stats": c.stats(r.Context())})
}

func (c *Console) getPipelineStats(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "pipeline", "Pipeline", map[string]any{"Topology": topology(c.o.Pipeline), "Stats": c.stats(r.Context())})
}

func (c *Console) stats(ctx context.Context) pipelineStats {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := pipelineStats{At: c.o.Now(), MetricsURLs: c.o.MetricsURLs}
	cur, err := c.scrape(ctx)
	if err != nil {
		st.MetricsErr = err.Error()
	}
	c.mu.Lock()
	prev := c.prev
	if len(cur.samples) > 0 {
		c.prev = cur
	}
	c.mu.Unlock()
	rate := func(stage, topic string) string {
		k := `sluice_stage_records_in_total{stage="` + stage + `",topic="` + topic + `"}`
		now, ok := cur.sum(k)
		if !ok {
			return ""
		}
		before, ok := prev.sum(k)
		dt := cur.at.Sub(prev.at).Seconds()
		if !ok || dt <= 0 {
			return "…"
		}
		return strconv.FormatFloat((now-before)/dt, 'f', 1, 64)
	}
	lags, err := c.adm.Lag(ctx, c.o.Groups...)
	if err != nil {
		st.LagErr = err.Error()
	}
	for _, g := range c.o.Groups {
		gl, ok := lags[g]
		if !ok {
			continue
		}
		if gl.Error() != nil {
			st.LagErr = g + ": " + gl.Error().Error()
			continue
		}
		stage, _ := wire.StageOfGroup(g) // the stage's metrics label
		for topic, ps := range gl.Lag {
			for p, l := range ps {
				if l.Err != nil {
					continue
				}
				if l.Commit.At < 0 && l.End.Offset == 0 {
					st.Idle++ // never had a record
					continue
				}
				key := g + "\x00" + topic + "\x00" + strconv.Itoa(int(p))
				off := offsetsAt{at: st.At, end: l.End.Offset, commit: l.Commit.At}
				c.mu.Lock()
				before, seen := c.prevOffsets[key]
				c.prevOffsets[key] = off
				c.mu.Unlock()
				dt := off.at.Sub(before.at).Seconds()
				st.Lag = append(st.Lag, lagRow{Group: g, Topic: topic, Partition: p, Committed: l.Commit.At,
					End: l.End.Offset, Lag: l.Lag, Rate: rate(stage, topic),
					In:       offsetRate(off.end, before.end, dt, seen),
					Consumed: offsetRate(off.commit, before.commit, dt, seen)})
			}
		}
	}
	sort.Slice(st.Lag, func(i, j int) bool {
		a, b := st.Lag[i], st.Lag[j]
		if a.Group != b.Group {
			return slices.Index(c.o.Groups, a.Group) < slices.Index(c.o.Groups, b.Group)
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	for _, a := range c.o.Pipeline.Aggregations {
		parts := cur.labelValues("sluice_stream_time_lag_seconds", "aggregation", a.Name, "partition")
		late := cur.get(`sluice_late_events_total{aggregation="` + a.Name + `"}`)
		results := cur.get(`sluice_window_results_total{aggregation="` + a.Name + `"}`)
		if len(parts) == 0 {
			st.Aggs = append(st.Aggs, aggRow{Aggregation: a.Name, Partition: "-", Late: late, Results: results})
		}
		for _, p := range parts {
			sel := `{aggregation="` + a.Name + `",partition="` + p + `"}`
			wm := ""
			if v, ok := cur.sum(`sluice_stream_time_seconds` + sel); ok && v > 0 {
				wm = time.Unix(int64(v), 0).UTC().Format(time.RFC3339)
			}
			st.Aggs = append(st.Aggs, aggRow{Aggregation: a.Name, Partition: p,
				StreamLag: cur.get(`sluice_stream_time_lag_seconds` + sel), Watermark: wm,
				OpenWindows: cur.get(`sluice_open_windows` + sel), Late: late, Results: results})
		}
	}
	for _, g := range c.o.Groups {
		s, _ := wire.StageOfGroup(g)
		row := stageRow{Stage: s,
			Committed: cur.get(`sluice_stage_transactions_total{result="commit",stage="` + s + `"}`),
			Aborted:   cur.get(`sluice_stage_transactions_total{result="abort",stage="` + s + `"}`)}
		if v, ok := cur.sum(`sluice_transaction_open_seconds{stage="` + s + `"}`); ok && v > 0 {
			row.Open = strconv.FormatFloat(v, 'f', 1, 64)
		}
		if n, ok := cur.prefixSum(`sluice_dead_letters_total{`, `stage="`+s+`"`); ok {
			row.DeadLetters = strconv.FormatFloat(n, 'f', 0, 64)
		}
		if row.Committed != "" || row.Aborted != "" || row.DeadLetters != "" {
			st.Stages = append(st.Stages, row)
		}
	}
	return st
}

// scrape is one read of every metrics URL: sample lines by their series, label names
// sorted (as Prometheus writes them).
type scrape struct {
	at      time.Time
	samples map[string]float64
}

var sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)`)

func (c *Console) scrape(ctx context.Context) (scrape, error) {
	s := scrape{at: c.o.Now(), samples: map[string]float64{}}
	var firstErr error
	for _, u := range c.o.MetricsURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return s, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "sluice_") {
				continue
			}
			m := sampleRE.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			v, err := strconv.ParseFloat(m[3], 64)
			if err != nil {
				continue
			}
			s.samples[m[1]+m[2]] += v // several processes: sum
		}
		resp.Body.Close()
	}
	return s, firstErr
}

func (s scrape) sum(series string) (float64, bool) {
	v, ok := s.samples[series]
	return v, ok
}

func (s scrape) get(series string) string {
	v, ok := s.samples[series]
	if !ok {
		return ""
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// prefixSum adds the samples whose series starts with prefix and contains label.
func (s scrape) prefixSum(prefix, label string) (float64, bool) {
	var n float64
	ok := false
	for k, v := range s.samples {
		if strings.HasPrefix(k, prefix) && strings.Contains(k, label) {
			n += v
			ok = true
		}
	}
	return n, ok
}

// labelValues lists the values of label want in the series of metric name whose label
// key equals val, sorted numerically.
func (s scrape) labelValues(name, key, val, want string) []string {
	var out []string
	for k := range s.samples {
		if !strings.HasPrefix(k, name+"{") || !strings.Contains(k, key+`="`+val+`"`) {
			continue
		}
		i := strings.Index(k, want+`="`)
		if i < 0 {
			continue
		}
		rest := k[i+len(want)+2:]
		out = append(out, rest[:strings.IndexByte(rest, '"')])
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i])
		b, _ := strconv.Atoi(out[j])
		return a < b
	})
	return slices.Compact(out)
}
