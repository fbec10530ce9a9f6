package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// bodiesPerTopic is how many distinct request bodies each topic cycles through.
const bodiesPerTopic = 256

// RunHeader is the client header that marks this run's events: ingest copies
// X-Sluice-Header-Bench-Run to the record header "bench-run", the clean stage keeps it,
// and the end-to-end consumer counts only records that carry this run's id.
const (
	RunHeader       = "X-Sluice-Header-Bench-Run"
	RunRecordHeader = "bench-run"
)

// bodies holds pre-encoded request bodies: the load generator must not spend the CPU
// it shares with the server on encoding. Events carry neither event_id nor event_time,
// so the server assigns a fresh ULID and the receive time to every copy: a reused
// body is never a duplicate.
type bodies struct {
	topics      []string
	slots       []int // topic index per slot, repeated by weight
	bodies      [][][]byte
	contentType string
	perRequest  int
}

// newBodies generates the bodies of every topic of o.Mix with pipeline/gen.
func newBodies(o Options) (*bodies, error) {
	b := &bodies{contentType: "application/json", perRequest: o.eventsPerRequest()}
	if o.Mode == ModeNDJSON {
		b.contentType = "application/x-ndjson"
	}
	for i, tw := range o.Mix {
		g, err := gen.New(tw.Topic, gen.Options{Seed: o.Seed + uint64(i)})
		if err != nil {
			return nil, err
		}
		b.topics = append(b.topics, tw.Topic)
		for range tw.Weight {
			b.slots = append(b.slots, i)
		}
		var list [][]byte
		for range bodiesPerTopic {
			body, err := encodeBody(g, o.Mode, b.perRequest)
			if err != nil {
				return nil, fmt.Errorf("bench: encode %s body: %w", tw.Topic, err)
			}
			list = append(list, body)
		}
		b.bodies = append(b.bodies, list)
	}
	return b, nil
}

// encodeBody builds one request body of n events.
func encodeBody(g *gen.Generator, mode string, n int) ([]byte, error) {
	evs := make([]map[string]any, n)
	for i := range evs {
		ev := g.Next()
		delete(ev, "event_id")
		delete(ev, "event_time")
		evs[i] = ev
	}
	switch mode {
	case ModeSingle:
		return json.Marshal(evs[0])
	case ModeBatch:
		return json.Marshal(evs)
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, ev := range evs {
			if err := enc.Encode(ev); err != nil {
				return nil, err
			}
		}
		return buf.Bytes(), nil
	}
}

// targeter returns a vegeta Targeter that cycles through the bodies in mix order; it
// is safe for concurrent use (the attacker's workers call it at once).
func (b *bodies) targeter(base, runID, token string) vegeta.Targeter {
	base = strings.TrimRight(base, "/")
	urls := make([]string, len(b.topics))
	for i, t := range b.topics {
		urls[i] = base + "/api/v1/events/" + url.PathEscape(t)
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", b.contentType)
	hdr.Set(RunHeader, runID)
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	var n atomic.Uint64
	return func(t *vegeta.Target) error {
		i := n.Add(1) - 1
		ti := b.slots[i%uint64(len(b.slots))]
		list := b.bodies[ti]
		t.Method = http.MethodPost
		t.URL = urls[ti]
		t.Body = list[(i/uint64(len(b.slots)))%uint64(len(list))]
		t.Header = hdr
		return nil
	}
}

// newAttacker is a vegeta attacker for the load: response bodies are not kept (a 2xx
// means every event of the request was accepted: validation is all-or-nothing), idle
// connections are kept for reuse up to conns open at once (a request beyond waits for
// one, and the wait is part of its latency), and workers grow as needed so the arrival rate never
// waits for a slow answer (open model: no coordinated omission).
func newAttacker(timeout time.Duration, conns int) *vegeta.Attacker {
	return vegeta.NewAttacker(
		vegeta.MaxBody(0),
		vegeta.Timeout(timeout),
		vegeta.KeepAlive(true),
		vegeta.Workers(64),
		vegeta.Connections(conns),
		vegeta.MaxConnections(conns),
		vegeta.Redirects(vegeta.NoFollow),
	)
}
