package monitoring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/service"
)

// onlyUnder lists the metrics that stay empty under the live test's load, and the fault or
// feature that fills them. A panel query or alert over only such metrics is not required
// to return data here; its alert rules are proven by `promtool test rules`.
var onlyUnder = map[string]string{
	"sluice_stage_partition_holds_total":    "a retry waits in a tier topic, an open circuit or ordered mode (e2e/retry_test.go)",
	"sluice_state_restore_duration_seconds": "", // filled at start-up: must have data
}

// TestLiveDashboardsAndAlerts (about 2 minutes: it waits for the first window to close) runs the whole platform (sluice dev, with a flaky user
// transform so retries and dead letters happen) under generated load that includes
// poison and late events, and a real three-broker Kafka cluster with the JMX exporter
// (scripts/kafka/kafka-cluster.sh, on its own ports) plus a node exporter; scrapes them
// with a real Prometheus on loopback, and evaluates every dashboard panel query (the
// Kafka cluster overview included) and every alert expression through Prometheus' HTTP API.
// Every query must execute; every one must return data unless all its metrics are in
// onlyUnder.
func TestLiveDashboardsAndAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform and Prometheus for about 2 minutes")
	}
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: `make deps` installs it (apt-get install prometheus)")
	}
	// The brokers: a three-node cluster with the JMX exporter on each node, and a node
	// exporter for the disk, scraped like MSK open monitoring.
	jmxTargets := startBrokers(t)
	nodeTarget := startNodeExporter(t)

	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	// The platform.
	httpPort, kafkaPort, regPort, promPort := freePort(t), freePort(t), freePort(t), freePort(t)
	svc := config.DefaultService()
	svc.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", httpPort)
	svc.InstanceID = "live"
	svc.IdleAdvance = 2 * time.Second
	rnd := rand.New(rand.NewPCG(7, 7))
	flaky := process.TransformFunc("enrich", func(context.Context, string, map[string]any) error {
		if rnd.Float64() < 0.2 {
			return errors.New("enrich: timeout")
		}
		return nil
	})
	devCtx, stopDev := context.WithCancel(context.Background())
	devDone := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		devDone <- service.Dev(devCtx, service.DevOptions{
			Service: svc, Pipeline: config.Default(), KafkaPort: kafkaPort,
			RegistryAddr: fmt.Sprintf("127.0.0.1:%d", regPort), GenerateRate: 300, Seed: 11,
			Transforms: map[string]process.Transform{"purchases": flaky},
			Ready:      func([]string, string, string) { close(ready) },
		})
	}()
	t.Cleanup(func() { stopDev(); <-devDone })
	select {
	case <-ready:
	case err := <-devDone:
		t.Fatalf("sluice dev: %v", err)
	case <-ctx.Done():
		t.Fatal("sluice dev did not start")
	}
	base := "http://" + svc.HTTPAddr
	postPoison(ctx, t, base)

	// Prometheus, scraping it every second, with the alert rules loaded.
	dir := t.TempDir()
	rules, err := filepath.Abs("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: sluice
    static_configs: [{targets: ["%s"]}]
  - job_name: kafka
    static_configs: [{targets: ["%s"]}]
  - job_name: kafka-node
    static_configs: [{targets: ["%s"]}]
`, rules, svc.HTTPAddr, strings.Join(jmxTargets, `", "`), nodeTarget)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	prom := exec.CommandContext(ctx, promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	var promLog strings.Builder
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log (tail):\n%s", tail(promLog.String(), 3000))
		}
	})
	api := fmt.Sprintf("http://127.0.0.1:%d", promPort)

	// Late events are late only once every source partition has a watermark: post them
	// when every revenue task has a stream time.
	waitUntil(ctx, t, "stream time on every revenue_by_country_1m task", func() bool {
		n, _ := queryCount(ctx, api, `sluice_stream_time_seconds{aggregation="revenue_by_country_1m"}`)
		return n == 3
	})
	postLate(ctx, t, base)
	// Enough history for rate() over 1m windows: wait until the target has been scraped
	// for 20s and the late events, dead letters and retries have been counted.
	var seen string
	waitUntil(ctx, t, "20s of scrapes with dead letters, retries and late events", func() bool {
		n, _ := queryScalar(ctx, api, `count_over_time(up{job="sluice"}[1m])`)
		d, _ := queryCount(ctx, api, `sluice_dead_letters_total`)
		r, _ := queryCount(ctx, api, `sluice_retries_total`)
		l, _ := queryCount(ctx, api, `sluice_late_events_total > 0`)
		// The first tumbling minute closes a minute (plus grace) after the load starts.
		// rate() needs two samples of the series.
		w, _ := queryCount(ctx, api, `count_over_time(sluice_end_to_end_latency_seconds_count{stage="agg"}[1m]) >= 2`)
		// Every broker and the node exporter scraped for 20s too.
		k, _ := queryCount(ctx, api, `count_over_time(up{job=~"kafka|kafka-node"}[1m]) >= 20`)
		seen = fmt.Sprintf("scrapes %v, dead-letter series %d, retry series %d, late series %d, window-result latency series %d, broker targets with 20s of scrapes %d of %d",
			n, d, r, l, w, k, len(jmxTargets)+1)
		return n >= 20 && d > 0 && r > 0 && l > 0 && w > 0 && k == len(jmxTargets)+1
	}, &seen)

	qs, err := DashboardQueries("grafana/dashboards")
	if err != nil {
		t.Fatal(err)
	}
	type check struct{ name, expr string }
	var checks []check
	for _, q := range qs {
		checks = append(checks, check{fmt.Sprintf("dashboard %s / %s / %s", q.Dashboard, q.Panel, q.RefID), q.Expr})
	}
	alerts, err := alertExprs("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, expr := range alerts {
		// An alert's expression is empty while it does not fire; its inputs must not be.
		checks = append(checks, check{"alert " + name + " (inputs)", stripComparisons(expr)})
	}
	passed, exempt := 0, 0
	for _, c := range checks {
		n, err := queryCount(ctx, api, c.expr)
		switch {
		case err != nil:
			t.Errorf("%s: %v\n  %s", c.name, err, c.expr)
		case n > 0:
			passed++
		case exemptExpr(c.expr):
			exempt++
			t.Logf("%s: empty, allowed: only non-empty when %s", c.name, exemptReason(c.expr))
		default:
			t.Errorf("%s: no data under load\n  %s", c.name, c.expr)
		}
	}
	fmt.Printf("live check: %d dashboard queries and %d alert expressions evaluated against Prometheus: %d returned data, %d empty only without their fault (%s)\n",
		len(qs), len(alerts), passed, exempt, strings.Join(exemptNames(), ", "))
	if len(qs) < 20 || len(alerts) < 10 {
		t.Errorf("only %d queries and %d alerts found", len(qs), len(alerts))
	}
}

// postPoison posts rule-breaking purchases (dead letters) and requests the API rejects.
func postPoison(ctx context.Context, t *testing.T, base string) {
	t.Helper()
	now := time.Now().UTC()
	for i := range 5 {
		post(ctx, t, base, map[string]any{"user_id": "u-poison", "session_id": "s-1", "country": "DE", "device": "mobile",
			"product_id": "p-1", "order_id": fmt.Sprintf("o-poison-%d", i), "amount": -5, "currency": "EUR", "items": 1,
			"event_time": now.Format(time.RFC3339)})
	}
	// An unknown topic and a malformed body: 4xx for the API panels.
	for _, path := range []string{"/api/v1/events/nope", "/api/v1/events/purchases"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader("{"))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// postLate posts purchases three hours old: behind every window of the aggregations.
func postLate(ctx context.Context, t *testing.T, base string) {
	t.Helper()
	at := time.Now().UTC().Add(-3 * time.Hour)
	for i := range 5 {
		post(ctx, t, base, map[string]any{"user_id": fmt.Sprintf("u-late-%d", i), "session_id": "s-2", "country": "FR",
			"device": "desktop", "product_id": "p-2", "order_id": fmt.Sprintf("o-late-%d", i), "amount": 10,
			"currency": "EUR", "items": 1, "event_time": at.Format(time.RFC3339)})
	}
}

func post(ctx context.Context, t *testing.T, base string, ev map[string]any) {
	t.Helper()
	b, _ := json.Marshal(ev)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/events/purchases", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("posting %v: status %d", ev, resp.StatusCode)
	}
}

// queryCount runs an instant query and returns how many series it returned.
func queryCount(ctx context.Context, api, expr string) (int, error) {
	u := api + "/api/v1/query?query=" + url.QueryEscape(expr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", body.Error)
	}
	if body.Data.ResultType == "scalar" {
		return 1, nil
	}
	return len(body.Data.Result), nil
}

// queryScalar runs an instant query and returns the value of its first series.
func queryScalar(ctx context.Context, api, expr string) (float64, error) {
	u := api + "/api/v1/query?query=" + url.QueryEscape(expr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if len(body.Data.Result) == 0 || len(body.Data.Result[0].Value) < 2 {
		return 0, nil
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// alertExprs reads every alert's expression from a rules file.
func alertExprs(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r.Expr
			}
		}
	}
	return out, nil
}

// comparison matches a top-level threshold comparison against a number: "> 0.05",
// "== 2", ">= bool 1".
var comparison = regexp.MustCompile(`\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?[0-9][0-9.e+]*\b`)

// stripComparisons turns an alert expression into the query of its inputs by removing
// its threshold comparisons, so it returns data whenever the inputs exist.
func stripComparisons(expr string) string { return comparison.ReplaceAllString(expr, "") }

var metricName = regexp.MustCompile(`\bsluice_[a-z_]+`)

func exemptExpr(expr string) bool {
	names := metricName.FindAllString(expr, -1)
	if len(names) == 0 {
		return false
	}
	for _, n := range names {
		if reason, ok := onlyUnder[baseName(n)]; !ok || reason == "" {
			return false
		}
	}
	return true
}

func exemptReason(expr string) string {
	var rs []string
	for _, n := range metricName.FindAllString(expr, -1) {
		if r := onlyUnder[baseName(n)]; r != "" && !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	return strings.Join(rs, "; ")
}

func exemptNames() []string {
	var out []string
	for n, r := range onlyUnder {
		if r != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func baseName(n string) string {
	for _, s := range []string{"_bucket", "_count", "_sum"} {
		n = strings.TrimSuffix(n, s)
	}
	return n
}

func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool, state ...*string) {
	t.Helper()
	last := func() string {
		if len(state) > 0 {
			return *state[0]
		}
		return ""
	}
	for i := 0; !cond(); i++ {
		if i > 900 {
			t.Fatalf("timed out waiting for %s (%s)", what, last())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s (%s)", what, last())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// liveKafkaPort is the base port of the live check's own three-node cluster (ports
// base+10 .. base+34), apart from make kafka-up's single broker (29092) and the fault
// suite's cluster (29200).
const liveKafkaPort = "29300"

// startBrokers starts a three-node cluster with the JMX exporter on every node
// (scripts/kafka/kafka-cluster.sh), writes and reads a few records so every broker
// metric has series, stops the cluster when the test ends, and returns the exporters'
// addresses.
func startBrokers(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatal("java is not installed: `make deps` installs it (the live check scrapes a real Kafka broker)")
	}
	script, err := filepath.Abs("../scripts/kafka/kafka-cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "SLUICE_KAFKA_CLUSTER_PORT="+liveKafkaPort,
		"SLUICE_KAFKA_CLUSTER_STATE="+filepath.Join(t.TempDir(), "kafka"))
	run := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("kafka-cluster.sh %s: %w\n%s", strings.Join(args, " "), err, tail(stderr.String(), 3000))
		}
		return string(out), nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := run(ctx, "up")
	t.Cleanup(func() {
		if _, err := run(context.Background(), "down"); err != nil {
			t.Errorf("stop the live check's brokers: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			vals[k] = v
		}
	}
	if vals["JMX_TARGETS"] == "" || vals["BOOTSTRAP"] == "" {
		t.Fatalf("kafka-cluster.sh up printed no JMX_TARGETS or BOOTSTRAP:\n%s", out)
	}
	if err := brokerTraffic(ctx, strings.Split(vals["BOOTSTRAP"], ",")); err != nil {
		t.Fatal(err)
	}
	return strings.Split(vals["JMX_TARGETS"], ",")
}

// brokerTraffic creates a replicated topic, writes 1,000 records with acks=all and reads
// them back: bytes in and out, log sizes and produce and fetch request metrics.
func brokerTraffic(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("live"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 3, nil, "live")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic live: %w", err)
	}
	recs := make([]*kgo.Record, 1000)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "live", Key: []byte(strconv.Itoa(i)), Value: []byte(strings.Repeat("x", 200))}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce to live: %w", err)
	}
	for n := 0; n < len(recs); {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read back %d of %d records: %w", n, len(recs), err)
		}
		n += fs.NumRecords()
	}
	return nil
}

// startNodeExporter starts a node exporter (filesystem collector only) on a free port and
// returns its address.
func startNodeExporter(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-node-exporter")
	if err != nil {
		if bin, err = exec.LookPath("node_exporter"); err != nil {
			t.Fatal("the node exporter is not installed: `make deps` installs it (apt-get install prometheus-node-exporter)")
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--collector.disable-defaults", "--collector.filesystem")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("node exporter log (tail):\n%s", tail(out.String(), 2000))
		}
	})
	return addr
}
