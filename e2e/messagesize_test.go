package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/harness"
)

// TestRecordOverTopicLimit413: ingest reads the raw topic's max.message.bytes at start-up
// and answers an event whose record is larger with 413 naming the event and the limit,
// not with a 503 that a client would retry forever (the broker's MESSAGE_TOO_LARGE used
// to come back as "Kafka did not acknowledge in time" with Retry-After: 1).
func TestRecordOverTopicLimit413(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	const limit = "4096"
	resp, err := p.Admin().AlterTopicConfigs(t.Context(), []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kadm.StringPtr(limit)}}, "purchases")
	if err == nil {
		_, err = resp.On("purchases", nil)
	}
	if err != nil {
		t.Fatalf("set max.message.bytes: %v", err)
	}
	p.RestartIngest() // reads the limit at start-up

	evs := events(t, "purchases", 7, 3)
	evs[2]["session_id"] = strings.Repeat("s", 5000)
	code, hdr, body := p.Post("purchases", "application/json", mustJSON(t, evs))
	if code != 413 {
		t.Fatalf("status %d, want 413: %s", code, body)
	}
	if hdr.Get("Retry-After") != "" {
		t.Error("413 with Retry-After: a client would retry it")
	}
	var prob struct {
		Errors []struct {
			Index   int    `json:"index"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &prob); err != nil || len(prob.Errors) != 1 || prob.Errors[0].Index != 2 ||
		!strings.Contains(prob.Errors[0].Message, limit) {
		t.Errorf("problem %s: want one error naming event 2 and the limit %s", body, limit)
	}
	// Events that fit still go through, and nothing of the refused request was written.
	ok := post202(t, p, "purchases", "application/json", mustJSON(t, evs[:2]))
	settle(t, p)
	exactlyOnce(t, idsOf(t, p.ReadAll("purchases.clean")), ok.EventIDs)
}
