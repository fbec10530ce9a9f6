package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// consumedLine is one line printed by `sluice consume`.
type consumedLine struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp string            `json:"timestamp"`
	Key       string            `json:"key"`
	Headers   map[string]string `json:"headers"`
	Value     map[string]any    `json:"value"`
	Error     string            `json:"decode_error"`
}

func parseLines(t *testing.T, out string) []consumedLine {
	t.Helper()
	var lines []consumedLine
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l consumedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("consume printed a line that is not a JSON record: %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	return lines
}

func httpGet(t *testing.T, ctx context.Context, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

var acceptedRE = regexp.MustCompile(`(?m)^sluice_ingest_events_total\{([^}]*)\} ([0-9.e+]+)$`)

// acceptedEvents sums sluice_ingest_events_total{result="accepted"} over all topics.
func acceptedEvents(t *testing.T, ctx context.Context, base string) float64 {
	t.Helper()
	code, body := httpGet(t, ctx, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	var sum float64
	for _, m := range acceptedRE.FindAllStringSubmatch(body, -1) {
		if !strings.Contains(m[1], `result="accepted"`) {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("metric value %q: %v", m[2], err)
		}
		sum += v
	}
	return sum
}

// TestDev runs the whole platform in-process on free ports and drives it the way the
// README tells a developer to: post an event, read it back cleaned, describe the topics,
// generate load both ways, then Ctrl-C.
func TestDev(t *testing.T) {
	t.Parallel()
	d := startDev(t)
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()

	if out := d.stdout.String(); !strings.Contains(out, d.Broker()) || !strings.Contains(out, d.APIURL()[len("http://"):]) ||
		!strings.Contains(out, d.RegistryURL()) {
		t.Errorf("banner does not show the addresses it runs on:\n%s", out)
	}

	t.Run("health endpoints", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, want string
		}{
			{"healthz", "/healthz", ""},
			{"readyz", "/readyz", ""},
			{"metrics", "/metrics", "sluice_ingest_events_total"},
			{"dead-letter gauges", "/metrics", `sluice_dead_letter_depth{topic="purchases.dlq"}`},
			{"retry gauges", "/metrics", `sluice_retry_depth{topic="_sluice.retry.5s"}`},
			{"consumer lag", "/metrics", `sluice_consumer_lag{group="sluice.clean"`},
			{"build info", "/metrics", `sluice_build_info{`},
			{"franz-go client metrics", "/metrics", `sluice_kafka_`},
			{"open transaction age", "/metrics", `sluice_transaction_open_seconds{stage="clean"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, body := httpGet(t, ctx, d.APIURL()+tc.path)
				if code != http.StatusOK {
					t.Fatalf("GET %s = %d: %s", tc.path, code, body)
				}
				if !strings.Contains(body, tc.want) {
					t.Errorf("GET %s does not contain %q", tc.path, tc.want)
				}
			})
		}
	})

	t.Run("broker metadata lists every pipeline topic", func(t *testing.T) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(d.Broker()))
		if err != nil {
			t.Fatal(err)
		}
		adm := kadm.NewClient(cl)
		defer adm.Close()
		md, err := adm.Metadata(ctx) // what `kcat -L` shows
		if err != nil {
			t.Fatal(err)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].Host != "127.0.0.1" || md.Brokers[0].Port != int32(d.KafkaPort) {
			t.Errorf("brokers = %+v, want one at %s", md.Brokers, d.Broker())
		}
		want := []string{"page_views", "clicks", "purchases", "purchases.clean", "purchases.dlq",
			"purchases.late", "_sluice.clean.purchases.dedup-changelog"}
		for _, s := range kafka.TopicsFor(config.Default()) {
			want = append(want, s.Name)
		}
		for _, name := range want {
			td, ok := md.Topics[name]
			if !ok || td.Err != nil {
				t.Errorf("topic %s missing from metadata (err %v); have %v", name, td.Err, md.Topics.Names())
				continue
			}
			if len(td.Partitions) != 3 {
				t.Errorf("topic %s has %d partitions, want 3", name, len(td.Partitions))
			}
		}
	})

	t.Run("topics describe", func(t *testing.T) {
		out, err := runCmd(t, ctx, "topics", "--brokers", d.Broker(), "describe")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("topics describe:\n%s", out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 2 || !slices.Equal(strings.Fields(lines[0]), []string{"TOPIC", "PARTITIONS", "COMPACTED", "STATUS"}) {
			t.Fatalf("unexpected output:\n%s", out)
		}
		rows := map[string][]string{}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) != 4 {
				t.Fatalf("row %q: want 4 columns", l)
			}
			rows[f[0]] = f[1:]
			if f[3] != "ok" {
				t.Errorf("topic %s status %s, want ok", f[0], f[3])
			}
		}
		if got := rows["purchases.clean"]; !slices.Equal(got, []string{"3", "false", "ok"}) {
			t.Errorf("purchases.clean row = %v, want [3 false ok]\n%s", got, out)
		}
		if got := rows["_sluice.clean.purchases.dedup-changelog"]; !slices.Equal(got, []string{"3", "true", "ok"}) {
			t.Errorf("changelog row = %v, want [3 true ok]\n%s", got, out)
		}
	})

	t.Run("purchase round trip", func(t *testing.T) {
		before := acceptedEvents(t, ctx, d.APIURL())
		eventID := fmt.Sprintf("test-%d", time.Now().UnixNano())
		body := fmt.Sprintf(`{"event_id":%q,"event_time":%q,"user_id":"u-42","session_id":"s-1","country":"DE",`+
			`"device":"desktop","order_id":"o-1","amount":19.99,"currency":"EUR","items":1,"product_id":"p-7"}`,
			eventID, time.Now().UTC().Format(time.RFC3339Nano))
		respBody := postAccepted(t, ctx, d.APIURL()+"/api/v1/events/purchases", body)
		var ack struct {
			Accepted int      `json:"accepted"`
			EventIDs []string `json:"event_ids"`
		}
		if err := json.Unmarshal(respBody, &ack); err != nil {
			t.Fatalf("response %s: %v", respBody, err)
		}
		if ack.Accepted != 1 || !slices.Equal(ack.EventIDs, []string{eventID}) {
			t.Errorf("response = %s, want accepted 1 with event id %s", respBody, eventID)
		}
		if got := acceptedEvents(t, ctx, d.APIURL()); got != before+1 {
			t.Errorf("sluice_ingest_events_total accepted = %v, want %v", got, before+1)
		}

		out, err := runCmd(t, ctx, "consume", "--brokers", d.Broker(), "--registry-url", d.RegistryURL(),
			"--from-beginning", "--max", "1", "--timeout", "20s", "purchases.clean")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("consume: %s", out)
		lines := parseLines(t, out)
		if len(lines) != 1 {
			t.Fatalf("consume printed %d records, want 1:\n%s", len(lines), out)
		}
		l := lines[0]
		if l.Topic != "purchases.clean" || l.Key != "u-42" || l.Error != "" {
			t.Errorf("record = %+v", l)
		}
		if l.Value["event_id"] != eventID || l.Value["country"] != "DE" || l.Value["amount"] != 19.99 {
			t.Errorf("value = %v", l.Value)
		}
		if l.Headers[wire.HeaderEventID] != eventID {
			t.Errorf("sluice-event-id header = %q, want %q", l.Headers[wire.HeaderEventID], eventID)
		}
		us, err := strconv.ParseInt(l.Headers[wire.HeaderIngestTS], 10, 64)
		if err != nil || time.Since(time.UnixMicro(us)).Abs() > time.Minute {
			t.Errorf("sluice-ingest-ts header = %q (%v), want unix micros of about now", l.Headers[wire.HeaderIngestTS], err)
		}
		pa, _ := l.Value["processed_at"].(string)
		if ts, err := time.Parse(time.RFC3339Nano, pa); err != nil || time.Since(ts).Abs() > time.Minute {
			t.Errorf("processed_at = %v (%v), want a time of about now", l.Value["processed_at"], err)
		}
	})

	t.Run("generate to kafka", func(t *testing.T) {
		out, err := runCmd(t, ctx, "generate", "--to", "kafka", "--brokers", d.Broker(), "--registry-url", d.RegistryURL(),
			"--count", "50", "--seed", "3", "--rate", "1000")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("generate: %s", out)
		if !strings.HasPrefix(out, "sent 50 events") {
			t.Errorf("output = %q, want sent 50 events", out)
		}
	})

	t.Run("generate to rest", func(t *testing.T) {
		before := acceptedEvents(t, ctx, d.APIURL())
		out, err := runCmd(t, ctx, "generate", "--to", "rest", "--url", d.APIURL(),
			"--count", "50", "--seed", "3", "--rate", "1000")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("generate: %s", out)
		if !strings.HasPrefix(out, "sent 50 events") {
			t.Errorf("output = %q, want sent 50 events", out)
		}
		if got := acceptedEvents(t, ctx, d.APIURL()); got != before+50 {
			t.Errorf("sluice_ingest_events_total accepted = %v, want %v", got, before+50)
		}
	})

	t.Run("ctrl-c drains and exits", func(t *testing.T) {
		if err := d.stop(t, 15*time.Second); err != nil {
			t.Fatalf("sluice dev returned %v, want nil", err)
		}
		// Everything it listened on is released.
		for _, port := range []int{d.KafkaPort, d.RegistryPort, d.HTTPPort} {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				t.Errorf("port %d still bound after exit: %v", port, err)
				continue
			}
			ln.Close()
		}
	})
}

// TestDevGenerate runs `sluice dev --generate` and reads generated page views back from
// the clean topic.
func TestDevGenerate(t *testing.T) {
	t.Parallel()
	d := startDev(t, "--generate", "200", "--seed", "7")
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()

	out, err := runCmd(t, ctx, "consume", "--brokers", d.Broker(), "--registry-url", d.RegistryURL(),
		"--from-beginning", "--max", "5", "--timeout", "20s", "page_views.clean")
	if err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, out)
	if len(lines) != 5 {
		t.Fatalf("consume printed %d records, want 5:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if l.Topic != "page_views.clean" || l.Error != "" || l.Value["processed_at"] == nil ||
			l.Headers[wire.HeaderEventID] == "" || l.Headers[wire.HeaderEventID] != l.Value["event_id"] {
			t.Errorf("record = %+v", l)
		}
	}
	if err := d.stop(t, 15*time.Second); err != nil {
		t.Fatalf("sluice dev --generate returned %v, want nil", err)
	}
}
