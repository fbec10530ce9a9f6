package e2e

import (
	"testing"

	"github.com/sluicehq/sluice/harness"
)

// The ingest API restarts gracefully between two requests: both requests' events reach
// .clean, read back with the harness's consume-until-N helper.
func TestIngestRestart(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	a := post202(t, p, "page_views", "application/json", mustJSON(t, events(t, "page_views", 31, 10)))
	before := p.IngestURL
	p.RestartIngest()
	if p.IngestURL == before {
		t.Fatal("ingest did not move to a new listener")
	}
	b := post202(t, p, "page_views", "application/json", mustJSON(t, events(t, "page_views", 32, 10)))
	got := p.Consume("page_views.clean", 20, caughtUp)
	exactlyOnce(t, idsOf(t, got), append(a.EventIDs, b.EventIDs...))
	settle(t, p)
	if all := p.ReadAll("page_views.clean"); len(all) != 20 {
		t.Errorf("page_views.clean has %d records, want 20", len(all))
	}
}
