package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/stagekit"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// WarehouseKind is where a test's sinks write: "duckdb" (a file in the test's temp dir)
// or "fakesnow" (the Snowflake dialect through gosnowflake, on the fakesnow server at
// SLUICE_TEST_FAKESNOW; each test gets its own database).
type WarehouseKind string

// Warehouse kinds.
const (
	DuckDB   WarehouseKind = "duckdb"
	Fakesnow WarehouseKind = "fakesnow"
)

// WarehouseKinds lists the warehouses the sink tests run on: DuckDB always, fakesnow when
// SLUICE_TEST_FAKESNOW names a server (make test starts one).
func WarehouseKinds() []WarehouseKind {
	if os.Getenv("SLUICE_TEST_FAKESNOW") != "" {
		return []WarehouseKind{DuckDB, Fakesnow}
	}
	return []WarehouseKind{DuckDB}
}

// OpenWarehouse opens a fresh, migrated warehouse of kind for t, closed when t ends.
// opts are sink options such as sink.WithFailpoint.
func OpenWarehouse(t testing.TB, kind WarehouseKind, opts ...sink.Option) *sink.SQLWarehouse {
	t.Helper()
	var w *sink.SQLWarehouse
	var err error
	switch kind {
	case DuckDB:
		w, err = sink.OpenDuckDB(filepath.Join(t.TempDir(), "warehouse.duckdb"), opts...)
	case Fakesnow:
		w, err = sink.OpenSnowflake(t.Context(), fakesnowConfig(t), opts...)
	default:
		t.Fatalf("unknown warehouse kind %q", kind)
	}
	if err != nil {
		t.Fatalf("open %s warehouse: %v", kind, err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Migrate(t.Context()); err != nil {
		t.Fatalf("migrate %s warehouse: %v", kind, err)
	}
	return w
}

// fakesnowConfig points the Snowflake dialect at the fakesnow server, in a database of
// its own for this test (fakesnow creates databases on first use).
func fakesnowConfig(t testing.TB) sink.SnowflakeConfig {
	addr := os.Getenv("SLUICE_TEST_FAKESNOW")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("SLUICE_TEST_FAKESNOW=%q: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("SLUICE_TEST_FAKESNOW=%q: %v", addr, err)
	}
	return sink.SnowflakeConfig{
		Account: "fakesnow", User: "fake", Password: "snow",
		Database: fmt.Sprintf("E2E_%d", time.Now().UnixNano()), Schema: "PUBLIC",
		Host: host, Port: p, Protocol: "http",
		MaxRetryCount: 1, // fakesnow answers unsupported statements with HTTP 500: fail fast
	}
}

// Sink is one running warehouse sink instance (group sluice.sink).
type Sink struct {
	// InstanceID names the instance.
	InstanceID string
	stage      *sink.Stage
	cancel     context.CancelFunc
	done       chan error
}

// StartSink starts a sink instance writing to w, with a new instance id. The sink's flush
// settings come from the service configuration (WithService: Sink.FlushRows, ...).
func (p *Pipeline) StartSink(w sink.Warehouse) *Sink {
	p.t.Helper()
	p.mu.Lock()
	p.nextIID++
	id := fmt.Sprintf("sink-%d", p.nextIID)
	p.mu.Unlock()
	d := p.Deps
	d.Service.InstanceID = id
	hook := p.SinkLatency
	st, err := service.NewSink(p.t.Context(), d, p.Schemas, w, func(topic string, dur time.Duration) {
		p.pm.ObserveEndToEnd("sink", topic, dur)
		if hook != nil {
			hook(topic, dur)
		}
	})
	if err != nil {
		p.t.Fatalf("start sink %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sink{InstanceID: id, stage: st, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- st.Run(ctx) }()
	p.t.Cleanup(func() { _ = s.Stop() })
	return s
}

// Stop shuts the sink down gracefully (it flushes what it buffered) and waits.
func (s *Sink) Stop() error {
	s.cancel()
	err := <-s.done
	s.done <- err
	if errors.Is(err, stagekit.ErrKilled) {
		return nil
	}
	return err
}

// Kill stops the sink abruptly, as a crash would: buffered rows are lost, nothing is
// flushed, and the group only notices after the session timeout. It waits until the
// instance stopped.
func (s *Sink) Kill() {
	s.stage.Kill()
	err := <-s.done
	s.done <- err
}

// Crash kills the instance without waiting for it to stop: for a failpoint hook, which
// runs on the instance's own goroutine.
func (s *Sink) Crash() { s.stage.Kill() }

// SinkTopics are the topics the sink consumes: every <t>.clean, and agg.<name> unless the
// pipeline runs clean-only.
func (p *Pipeline) SinkTopics() []string {
	var ts []string
	for _, t := range p.Deps.Pipeline.Topics {
		ts = append(ts, wire.CleanTopic(t.Name))
	}
	for _, a := range p.Deps.Pipeline.Aggregations {
		ts = append(ts, wire.AggTopic(a.Name))
	}
	return ts
}

// WaitSinkCaughtUp waits until the warehouse's SLUICE_OFFSETS reach the end (the last
// stable offset) of every partition of every sink topic: then every committed record is
// in the warehouse.
func (p *Pipeline) WaitSinkCaughtUp(w sink.Warehouse, timeout time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.t.Context(), timeout)
	defer cancel()
	topics := p.SinkTopics()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var behind string
	for {
		ends, err := p.adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			behind, err = sinkBehind(ctx, p, w, ends)
		}
		if err == nil && behind == "" {
			return
		}
		if err != nil {
			behind = err.Error()
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("sink not caught up within %s: %s", timeout, behind)
		case <-tick.C:
		}
	}
}

// sinkBehind describes how far the warehouse's offsets are behind ends (read_committed
// records only), or "" when it has everything.
func sinkBehind(ctx context.Context, p *Pipeline, w sink.Warehouse, ends kadm.ListedOffsets) (string, error) {
	rows, err := w.Query(ctx, `SELECT TOPIC, "PARTITION", NEXT_OFFSET FROM SLUICE_OFFSETS`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	next := map[string]map[int32]int64{}
	for rows.Next() {
		var t string
		var part int32
		var n int64
		if err := rows.Scan(&t, &part, &n); err != nil {
			return "", err
		}
		if next[t] == nil {
			next[t] = map[int32]int64{}
		}
		next[t][part] = n
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	lag, err := p.lagAt(ctx, p.SinkTopics(), ends, func(t string, part int32) int64 { return next[t][part] })
	if err != nil || lag == 0 {
		return "", err
	}
	return fmt.Sprintf("%d records not yet in the warehouse", lag), nil
}

// Backend names the backend the pipeline runs on ("kfake", "external", ...).
func (p *Pipeline) Backend() string { return p.backend.Name() }
