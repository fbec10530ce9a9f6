package reprocess

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/stream"
)

func TestLastClose(t *testing.T) {
	base := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) int64 { return base.Add(d).UnixMilli() }
	m := time.Minute.Milliseconds()
	for _, c := range []struct {
		name string
		spec stream.Spec
		to   int64
		want int64
	}{
		// Windows [10:04, 10:05) is the last before 10:05; it closes at 10:05:05.
		{"tumbling, aligned to", stream.Spec{Type: stream.Tumbling, Size: m, Advance: m, Grace: 5000}, ms(5 * time.Minute), ms(5*time.Minute + 5*time.Second)},
		{"tumbling, inside a window", stream.Spec{Type: stream.Tumbling, Size: m, Grace: 5000}, ms(5*time.Minute + time.Second), ms(6*time.Minute + 5*time.Second)},
		// Hopping 5m every 1m: the last start before 10:05 is 10:04, its end 10:09.
		{"hopping", stream.Spec{Type: stream.Hopping, Size: 5 * m, Advance: m, Grace: 10000}, ms(5 * time.Minute), ms(9*time.Minute + 10*time.Second)},
		{"session", stream.Spec{Type: stream.Session, Gap: 30000, Grace: 5000}, ms(5 * time.Minute), ms(5*time.Minute + 35*time.Second)},
		{"before the epoch", stream.Spec{Type: stream.Tumbling, Size: m, Grace: 0}, -1, 0},
	} {
		if got := lastClose(c.spec, c.to); got != c.want {
			t.Errorf("%s: lastClose = %s, want %s", c.name, time.UnixMilli(got).UTC(), time.UnixMilli(c.want).UTC())
		}
	}
}

func TestValidate(t *testing.T) {
	p := config.Default()
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	if _, err := Validate(p, "revenue_by_country_1m", at, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		agg      string
		from, to time.Time
		want     string
	}{
		{"nope", at, at.Add(time.Hour), `unknown aggregation "nope" (the pipeline has: revenue_by_country_1m`},
		{"revenue_by_country_1m", at, at, "must be before --to"},
		{"revenue_by_country_1m", at.Add(time.Hour), at, "must be before --to"},
	} {
		if _, err := Validate(p, c.agg, c.from, c.to); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s [%s, %s): %v, want %q", c.agg, c.from, c.to, err, c.want)
		}
	}
}
