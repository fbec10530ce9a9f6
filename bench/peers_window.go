package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/twmb/franz-go/pkg/kgo"
)

// windowConsumer reads a window-results topic (read_committed) from the start.
type windowConsumer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	got    map[string]peerWindow
	// last arrival among windows starting before a bound is computed on demand.
	avroSchema avro.Schema
}

func startWindowConsumer(brokers []string, topic string, sluice bool) (*windowConsumer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond), kgo.AllowAutoTopicCreation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	wc := &windowConsumer{cl: cl, cancel: cancel, done: make(chan struct{}), got: map[string]peerWindow{}}
	if sluice {
		text, err := schema.Aggregate("revenue_by_country_1m", []schema.AggregateMeasure{
			{Func: "sum", Column: "sum_amount"}, {Func: "avg", Column: "avg_amount"},
			{Func: "min", Column: "min_amount"}, {Func: "max", Column: "max_amount"}})
		if err == nil {
			wc.avroSchema, err = avro.Parse(text)
		}
		if err != nil {
			cl.Close()
			cancel()
			return nil, err
		}
	}
	go func() {
		defer close(wc.done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				w, err := wc.decode(r.Value)
				if err != nil {
					return
				}
				w.VisibleAt = now
				k := peerWindowKey(w.Country, w.Start)
				wc.mu.Lock()
				if old, ok := wc.got[k]; ok {
					w.VisibleAt = old.VisibleAt
					if old.Count != w.Count || !near(old.Sum, w.Sum) {
						w.Duplicated = true
					}
				}
				wc.got[k] = w
				wc.mu.Unlock()
			})
		}
	}()
	return wc, nil
}

// decode reads a window result: Sluice's Avro (Confluent-framed) or the peers' JSON line.
func (wc *windowConsumer) decode(b []byte) (peerWindow, error) {
	var w peerWindow
	if wc.avroSchema == nil {
		err := json.Unmarshal(b, &w)
		return w, err
	}
	if len(b) < 5 {
		return w, errors.New("short record")
	}
	var m map[string]any
	if err := avro.Unmarshal(wc.avroSchema, b[5:], &m); err != nil {
		return w, err
	}
	if g, ok := m["group"].(map[string]any); ok {
		w.Country, _ = g["country"].(string)
	}
	w.Start = millisOf(m["window_start"])
	w.End = millisOf(m["window_end"])
	w.Count, _ = m["count"].(int64)
	w.Sum = floatOf(m["sum_amount"])
	w.Avg = floatOf(m["avg_amount"])
	w.Min = floatOf(m["min_amount"])
	w.Max = floatOf(m["max_amount"])
	return w, nil
}

func millisOf(v any) int64 {
	switch t := v.(type) {
	case time.Time:
		return t.UnixMilli()
	case int64:
		return t
	}
	return math.MinInt64
}

func floatOf(v any) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case map[string]any:
		for _, x := range t {
			return floatOf(x)
		}
	}
	return math.NaN()
}

// CountBefore is how many distinct windows starting before bound are visible, and when
// the last of them became visible.
func (wc *windowConsumer) CountBefore(bound int64) (int, time.Time) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	n := 0
	var last time.Time
	for _, w := range wc.got {
		if w.Start < bound {
			n++
			if w.VisibleAt.After(last) {
				last = w.VisibleAt
			}
		}
	}
	return n, last
}

// CountAt is how many distinct windows starting at start are visible.
func (wc *windowConsumer) CountAt(start int64) int {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	n := 0
	for _, w := range wc.got {
		if w.Start == start {
			n++
		}
	}
	return n
}

// Windows is a copy of what it has read.
func (wc *windowConsumer) Windows() map[string]peerWindow {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	out := make(map[string]peerWindow, len(wc.got))
	for k, w := range wc.got {
		out[k] = w
	}
	return out
}

func (wc *windowConsumer) Stop() {
	wc.cancel()
	<-wc.done
	wc.cl.Close()
}
