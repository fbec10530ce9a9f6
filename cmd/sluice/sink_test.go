package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/gen"
)

// TestSinkCommand runs `sluice sink` as its own service against the Kafka and registry of a
// running dev (whose own sink shares the group sluice.sink, so the partitions are split
// between the two): it serves /healthz and /metrics, writes its share of the rows into its
// DuckDB file, answers `sluice query` while it holds the file, and on Ctrl-C flushes,
// leaves and releases the file.
func TestSinkCommand(t *testing.T) {
	t.Parallel()
	d := startDev(t, "--query-addr=")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "sink.duckdb")
	httpPort, queryPort := freePort(t), freePort(t)
	sinkCtx, stopSink := context.WithCancel(ctx)
	defer stopSink()
	done := make(chan error, 1)
	var stdout, stderr bytes.Buffer
	go func() {
		done <- run(sinkCtx, []string{"sink", "--brokers", d.Broker(), "--registry-url", d.RegistryURL(),
			"--http-addr", "127.0.0.1:" + strconv.Itoa(httpPort), "--query-addr", "127.0.0.1:" + strconv.Itoa(queryPort),
			"--duckdb-path", path, "--instance-id", "sink-1", "--sink-flush-interval", "200ms"}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sluice sink stderr:\n%s", stderr.String())
		}
	})
	metrics := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	until(t, ctx, "sluice sink serves /healthz", func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, metrics+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	total := func() int64 {
		out, err := runCmd(t, ctx, "query", "--json", "--query-addr", "127.0.0.1:"+strconv.Itoa(queryPort),
			"select (select count(*) from PURCHASES) + (select count(*) from PAGE_VIEWS) + (select count(*) from CLICKS) as n")
		if err != nil {
			t.Fatalf("query the sink: %v", err)
		}
		var r struct{ N int64 }
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("query printed %q: %v", out, err)
		}
		return r.N
	}
	// Post events of every topic through dev's API until this sink has written some: the
	// group decides which partitions it owns.
	gens := map[string]*gen.Generator{}
	for _, topic := range gen.Topics() {
		g, err := gen.New(topic, gen.Options{Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		gens[topic] = g
	}
	until(t, ctx, "sluice sink writes rows", func() bool {
		for topic, g := range gens {
			batch := make([]map[string]any, 30)
			for i := range batch {
				batch[i] = g.Next()
			}
			body, _ := json.Marshal(batch)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.APIURL()+"/api/v1/events/"+topic, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST %s: %d", topic, resp.StatusCode)
			}
		}
		return total() > 0
	})
	code, m := httpGet(t, ctx, metrics+"/metrics")
	if code != http.StatusOK || !strings.Contains(m, "sluice_sink_rows_total{") {
		t.Fatalf("/metrics (%d) lacks sluice_sink_rows_total", code)
	}

	stopSink()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sluice sink after Ctrl-C: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("sluice sink did not stop")
	}
	// The file is released: it can be read directly now.
	out, err := runCmd(t, ctx, "query", "--json", "--duckdb-path", path, "select (select count(*) from PURCHASES) + (select count(*) from PAGE_VIEWS) + (select count(*) from CLICKS) > 0 as rows")
	if err != nil || out != "{\"rows\":true}\n" {
		t.Fatalf("query the released file: %q %v", out, err)
	}
}
