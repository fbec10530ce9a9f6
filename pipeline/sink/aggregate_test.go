package sink_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// result is a decoded agg.revenue_by_country_1m record (schema.Aggregate).
func result(off int64, country string, minute int, count int64, sum float64, final bool) sink.Row {
	start := t0.Add(time.Duration(minute) * time.Minute)
	return sink.Row{
		Offset:   off,
		EventID:  "ev-newest",
		IngestTS: t0,
		Values: map[string]any{
			"aggregation":  "revenue_by_country_1m",
			"group":        map[string]any{"country": country, "currency": "EUR"},
			"window_start": start,
			"window_end":   start.Add(time.Minute),
			"count":        count,
			"sum_amount":   sum,
			"avg_amount":   nil,
			"emitted_at":   start.Add(time.Minute + time.Duration(off)*time.Second),
			"final":        final,
		},
	}
}

func aggBatch(start, end, epoch int64, rows ...sink.Row) sink.Batch {
	return sink.Batch{Topic: "agg.revenue_by_country_1m", Start: start, End: end, Epoch: epoch, Rows: rows, Aggregate: true}
}

func TestAggregatesUpsertByWindow(t *testing.T) {
	w := openDuck(t)
	epoch, _ := claim(t, w, "agg.revenue_by_country_1m", 0)
	write(t, w, aggBatch(0, 3, epoch,
		result(0, "DE", 0, 1, 10, false),
		result(1, "FR", 0, 1, 5, false),
		result(2, "DE", 0, 2, 30, false), // the same window again in the same batch: last wins
	))
	write(t, w, aggBatch(3, 5, epoch,
		result(3, "DE", 0, 3, 42, true), // a later batch replaces the earlier result
		result(4, "DE", 1, 1, 7, false), // the next window is a new row
	))
	got := queryStrings(t, w, `SELECT group_key || ' ' || strftime(window_start, '%H:%M') || ' ' ||
		CAST(measures->>'count' AS VARCHAR) || ' ' || CAST(measures->>'sum_amount' AS VARCHAR) || ' ' ||
		CAST(measures->>'final' AS VARCHAR) || ' ' || strftime(emitted_at, '%H:%M:%S')
		FROM aggregates ORDER BY group_key, window_start`)
	want := []string{
		`{"country":"DE","currency":"EUR"} 10:00 3 42 true 10:01:03`,
		`{"country":"DE","currency":"EUR"} 10:01 1 7 false 10:02:04`,
		`{"country":"FR","currency":"EUR"} 10:00 1 5 false 10:01:01`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("aggregates:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := scalar(t, w, `SELECT count(*) FROM sluice_stage_aggregates`); n != 0 {
		t.Fatalf("staged rows left = %d", n)
	}

	// A replay of an old batch (a sink that lost its offsets) cannot bring back old values.
	if err := w.Write(t.Context(), aggBatch(0, 3, epoch, result(0, "DE", 0, 1, 10, false))); !errors.Is(err, sink.ErrOffsetMismatch) {
		t.Fatalf("replayed batch = %v, want ErrOffsetMismatch", err)
	}
	if n := scalar(t, w, `SELECT CAST(measures->>'count' AS BIGINT) FROM aggregates WHERE group_key LIKE '%DE%' AND window_start = ?`, t0); n != 3 {
		t.Fatalf("count after replay = %d, want 3", n)
	}
}

func TestAggregatesRejectMalformedResults(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r sink.Row)
	}{
		{"no aggregation", func(r sink.Row) { delete(r.Values, "aggregation") }},
		{"group not a map", func(r sink.Row) { r.Values["group"] = "DE" }},
		{"window start not a time", func(r sink.Row) { r.Values["window_start"] = int64(5) }},
		{"no emitted_at", func(r sink.Row) { delete(r.Values, "emitted_at") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := openDuck(t)
			epoch, _ := claim(t, w, "agg.revenue_by_country_1m", 0)
			r := result(0, "DE", 0, 1, 1, true)
			tt.mutate(r)
			err := w.Write(t.Context(), aggBatch(0, 1, epoch, r))
			if !errors.Is(err, sink.ErrRowRejected) {
				t.Fatalf("Write = %v, want ErrRowRejected", err)
			}
		})
	}
}

func TestAggregatesNeedMigrate(t *testing.T) {
	w, err := sink.OpenDuckDB("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Write(t.Context(), aggBatch(0, 1, 1, result(0, "DE", 0, 1, 1, true))); !errors.Is(err, sink.ErrUnknownTable) {
		t.Fatalf("Write before Migrate = %v, want ErrUnknownTable", err)
	}
}
