package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/console"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// lagRowRE matches a row of the console's lag table for the clean stage on purchases and
// captures its In and Consumed rates.
var lagRowRE = regexp.MustCompile(`<tr><td>sluice\.clean</td><td>purchases</td>(?:<td[^>]*>[^<]*</td>){4}<td class="num">([0-9.]+)</td><td class="num">([0-9.]+)</td>`)

// The console's pages on the pipeline the suite runs on (kfake in make test-fast, a real
// Kafka broker in test-real): the pipeline page lists the stages' groups with their lag
// read from Kafka and the rates read from /metrics, the dead-letter page finds a poison
// record with the HTML in it escaped, and the windows and events pages answer. The browser
// tests of pipeline/console drive the same pages on kfake.
func TestConsolePagesOnBroker(t *testing.T) {
	p := harness.Start(t, harness.WithCleanOnly())
	evs := events(t, "purchases", 7, 20)
	evs[3]["amount"] = -1.0 // breaks a rule: dead-lettered
	evs[3]["product_id"] = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	a := post202(t, p, "purchases", "application/json", mustJSON(t, evs))
	settle(t, p)
	poison := a.EventIDs[3]
	waitFor(t, "the poison record in purchases.dlq", func() bool {
		for _, r := range p.ReadAll("purchases.dlq") {
			if r.Headers[wire.HeaderEventID] == poison {
				return true
			}
		}
		return false
	})

	now := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	c, err := console.New(console.Options{Pipeline: p.Deps.Pipeline, Kafka: p.Deps.Kafka, Registry: p.Schemas,
		Groups: service.Groups(p.Deps.Pipeline), MetricsURLs: []string{p.IngestURL + "/metrics"},
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	get := func(path string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d: %s", path, res.StatusCode, b)
		}
		return string(b)
	}

	// Per-partition rates from the offsets between two refreshes 10 s apart (clock
	// injected): 40 more purchases arrive and are consumed in between.
	get("/pipeline/stats")
	post202(t, p, "purchases", "application/json", mustJSON(t, events(t, "purchases", 8, 40)))
	settle(t, p)
	now = now.Add(10 * time.Second)
	page := get("/pipeline/stats")
	var in, consumed float64
	for _, m := range lagRowRE.FindAllStringSubmatch(page, -1) {
		i, _ := strconv.ParseFloat(m[1], 64)
		c, _ := strconv.ParseFloat(m[2], 64)
		in, consumed = in+i, consumed+c
	}
	// 40 records in 10 s: 4/s, plus ingest's commit markers (one offset per partition the
	// request's transaction wrote: at most 3 here), on both sides.
	for what, v := range map[string]float64{"in": in, "consumed": consumed} {
		if v < 3.95 || v > 4.35 { // each partition rounded to 0.1
			t.Errorf("sluice.clean on purchases: %s %.1f/s summed over the partitions, want 4 to 4.3", what, v)
		}
	}
	for _, want := range []string{"sluice.clean", "purchases", "purchases.clean"} {
		if !strings.Contains(page, want) {
			t.Errorf("pipeline page lacks %q", want)
		}
	}
	if strings.Contains(page, `class="err">Metrics:`) {
		t.Errorf("pipeline page could not read /metrics")
	}
	list := get("/dlq/list?" + url.Values{"topic": {"purchases.dlq"}, "text": {"amount"}}.Encode())
	if !strings.Contains(list, "1 of 1") {
		t.Errorf("dead-letter list does not show the poison record:\n%s", list)
	}
	// The record view: the decoded value, its HTML shown as text.
	i := strings.Index(list, `href="/dlq/record?`)
	if i < 0 {
		t.Fatalf("no record link in the dead-letter list:\n%s", list)
	}
	link := list[i+len(`href="`):]
	link = strings.ReplaceAll(link[:strings.IndexByte(link, '"')], "&amp;", "&")
	rec := get(link)
	if strings.Contains(rec, "<script>alert(1)") || strings.Contains(rec, "<img src=x") {
		t.Errorf("the record view shows the record's HTML unescaped")
	}
	if !strings.Contains(rec, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(rec, poison) {
		t.Errorf("the record view lacks the escaped value or the event id %s:\n%s", poison, rec)
	}
	for _, path := range []string{"/dlq", "/windows", "/events"} {
		get(path)
	}
}
