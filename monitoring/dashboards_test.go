package monitoring_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/monitoring"
)

// dashDir is where the dashboards live, relative to this package; docker-compose mounts
// it at dashMountPath.
const (
	dashDir       = "grafana/dashboards"
	dashMountPath = "/var/lib/grafana/dashboards"
)

// dashMetric describes a metric the dashboards may use: its type and its labels (job and
// instance come from Prometheus and are always allowed).
type dashMetric struct {
	kind   string // counter, gauge or histogram
	labels []string
}

// dashCatalog is the metric catalog (catalogMetrics, tools_test.go) plus the kprom, Go and process
// metrics the dashboards read. prometheus/prometheus is not a dependency, so instead of
// its parser the tests check PromQL structurally against this list.
var dashCatalog = map[string]dashMetric{
	"sluice_http_request_duration_seconds":        {"histogram", []string{"route", "method", "status"}},
	"sluice_ingest_events_total":                  {"counter", []string{"topic", "result"}},
	"sluice_ingest_requests_rejected_total":       {"counter", []string{"topic", "reason"}},
	"sluice_ingest_produce_duration_seconds":      {"histogram", []string{"topic"}},
	"sluice_stage_records_in_total":               {"counter", []string{"stage", "topic"}},
	"sluice_stage_records_out_total":              {"counter", []string{"stage", "topic"}},
	"sluice_stage_transactions_total":             {"counter", []string{"stage", "result"}},
	"sluice_stage_transaction_duration_seconds":   {"histogram", []string{"stage"}},
	"sluice_transaction_open_seconds":             {"gauge", []string{"stage"}},
	"sluice_state_restore_duration_seconds":       {"histogram", []string{"stage"}},
	"sluice_state_restored_records_total":         {"counter", []string{"stage"}},
	"sluice_state_keys":                           {"gauge", []string{"stage", "store", "topic", "partition"}},
	"sluice_state_restores_total":                 {"counter", []string{"stage", "mode"}},
	"sluice_state_restored_records_by_mode_total": {"counter", []string{"stage", "mode"}},
	"sluice_state_disk_bytes":                     {"gauge", []string{"stage", "store", "topic", "partition"}},
	"sluice_state_cache_bytes":                    {"gauge", []string{"stage", "store", "topic", "partition"}},
	"sluice_state_expiry_backlog":                 {"gauge", []string{"stage", "store", "topic", "partition"}},
	"sluice_state_largest_tombstone_batch":        {"gauge", []string{"stage", "store", "topic", "partition"}},
	"sluice_clean_duplicates_total":               {"counter", []string{"topic"}},
	"sluice_dead_letters_total":                   {"counter", []string{"stage", "topic", "class"}},
	"sluice_end_to_end_latency_seconds":           {"histogram", []string{"stage", "topic"}},
	"sluice_watermark_seconds":                    {"gauge", []string{"aggregation", "partition", "source"}},
	"sluice_stream_time_seconds":                  {"gauge", []string{"aggregation", "partition"}},
	"sluice_stream_time_lag_seconds":              {"gauge", []string{"aggregation", "partition"}},
	"sluice_open_windows":                         {"gauge", []string{"aggregation", "partition"}},
	"sluice_late_events_total":                    {"counter", []string{"aggregation"}},
	"sluice_window_results_total":                 {"counter", []string{"aggregation"}},
	"sluice_retries_total":                        {"counter", []string{"stage", "topic", "tier"}},
	"sluice_retry_redeliveries_total":             {"counter", []string{"tier"}},
	"sluice_stage_partition_holds_total":          {"counter", []string{"stage", "reason"}},
	"sluice_circuit_breaker_state":                {"gauge", []string{"stage", "dependency"}},
	"sluice_dead_letter_depth":                    {"gauge", []string{"topic"}},
	"sluice_dead_letter_oldest_age_seconds":       {"gauge", []string{"topic"}},
	"sluice_retry_depth":                          {"gauge", []string{"topic"}},
	"sluice_dead_letter_monitor_errors_total":     {"counter", nil},
	"sluice_consumer_lag":                         {"gauge", []string{"group", "topic", "partition"}},
	"sluice_build_info":                           {"gauge", []string{"version", "goversion"}},
	"sluice_sink_rows_total":                      {"counter", []string{"table"}},
	"sluice_sink_flush_duration_seconds":          {"histogram", nil},
	"sluice_sink_freshness_seconds":               {"gauge", []string{"table"}},
	// franz-go through kprom (pipeline/kafka/metrics.go): namespace sluice_kafka, label client.
	"sluice_kafka_produce_bytes_total":            {"counter", []string{"client", "node_id", "topic"}},
	"sluice_kafka_fetch_bytes_total":              {"counter", []string{"client", "node_id", "topic"}},
	"sluice_kafka_buffered_produce_records_total": {"gauge", []string{"client"}}, // gauges despite their names
	"sluice_kafka_buffered_fetch_records_total":   {"gauge", []string{"client"}},
	"sluice_kafka_write_bytes_total":              {"counter", []string{"client", "node_id"}},
	"sluice_kafka_read_bytes_total":               {"counter", []string{"client", "node_id"}},
	// Kafka brokers through the JMX exporter (monitoring/kafka/jmx-exporter.yml).
	"kafka_server_replicamanager_underreplicatedpartitions":       {"gauge", nil},
	"kafka_server_replicamanager_underminisrpartitioncount":       {"gauge", nil},
	"kafka_server_replicamanager_partitioncount":                  {"gauge", nil},
	"kafka_server_replicamanager_leadercount":                     {"gauge", nil},
	"kafka_server_replicamanager_isrshrinks_total":                {"counter", nil},
	"kafka_server_replicamanager_isrexpands_total":                {"counter", nil},
	"kafka_controller_kafkacontroller_activecontrollercount":      {"gauge", nil},
	"kafka_controller_kafkacontroller_offlinepartitionscount":     {"gauge", nil},
	"kafka_controller_kafkacontroller_activebrokercount":          {"gauge", nil},
	"kafka_controller_kafkacontroller_fencedbrokercount":          {"gauge", nil},
	"kafka_network_requestmetrics_totaltimems":                    {"gauge", []string{"request", "quantile"}},
	"kafka_network_requestmetrics_requests_total":                 {"counter", []string{"request"}},
	"kafka_server_brokertopicmetrics_bytesin_total":               {"counter", nil},
	"kafka_server_brokertopicmetrics_bytesout_total":              {"counter", nil},
	"kafka_server_brokertopicmetrics_replicationbytesin_total":    {"counter", nil},
	"kafka_server_brokertopicmetrics_replicationbytesout_total":   {"counter", nil},
	"kafka_server_brokertopicmetrics_messagesin_total":            {"counter", nil},
	"kafka_server_brokertopicmetrics_failedproducerequests_total": {"counter", nil},
	"kafka_server_brokertopicmetrics_failedfetchrequests_total":   {"counter", nil},
	"kafka_network_socketserver_networkprocessoravgidlepercent":   {"gauge", nil},
	"kafka_log_log_size":                            {"gauge", []string{"topic", "partition"}},
	"kafka_log_logflushstats_logflushrateandtimems": {"gauge", []string{"quantile"}},
	"kafka_log_logflushstats_flushes_total":         {"counter", nil},
	"up":                                            {"gauge", nil},
	"go_info":                                       {"gauge", []string{"version"}},
	"go_goroutines":                                 {"gauge", nil},
	"process_cpu_seconds_total":                     {"counter", nil},
	"process_resident_memory_bytes":                 {"gauge", nil},
}

// dashFunctions are the PromQL functions, aggregations and keywords followed by "(" that
// the dashboards may use; anything else is a typo.
var dashFunctions = []string{"sum", "min", "max", "avg", "count", "rate", "increase", "deriv",
	"histogram_quantile", "label_replace", "vector", "time", "by", "without", "on", "ignoring",
	"and", "or", "unless", "bool"}

// TestDashboardQueries checks every panel query DashboardQueries returns for the
// committed dashboards: nothing left to substitute, and sound PromQL over catalog metrics.
func TestDashboardQueries(t *testing.T) {
	qs, err := monitoring.DashboardQueries(dashDir)
	if err != nil {
		t.Fatal(err)
	}
	perDashboard := map[string]int{}
	seen := map[string]bool{}
	for _, q := range qs {
		perDashboard[q.Dashboard]++
		key := q.Dashboard + "/" + q.Panel + "/" + q.RefID
		if seen[key] {
			t.Errorf("%s: duplicate dashboard/panel/refId", key)
		}
		seen[key] = true
		if q.Panel == "" || q.RefID == "" {
			t.Errorf("%s: empty panel title or refId", key)
		}
		if err := dashCheckExpr(q.Expr, strings.Contains(q.Panel, "(since start)")); err != nil {
			t.Errorf("%s: %v\n  %s", key, err, q.Expr)
		}
	}
	want := []string{"sluice-api", "sluice-consumer-lag", "sluice-dlq-retries", "sluice-kafka", "sluice-overview", "sluice-sink", "sluice-stream"}
	for _, uid := range want {
		if perDashboard[uid] == 0 {
			t.Errorf("dashboard %s: no queries", uid)
		}
	}
	t.Logf("%d queries in %d dashboards", len(qs), len(perDashboard))
}

// dashModel is the part of Grafana's dashboard model the file checks read.
type dashModel struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	SchemaVersion int      `json:"schemaVersion"`
	Refresh       string   `json:"refresh"`
	Tags          []string `json:"tags"`
	Time          struct{ From, To string }
	Panels        []dashPanel `json:"panels"`
	Templating    struct{ List []dashVariable }
}

type dashVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	AllValue   string          `json:"allValue"`
	IncludeAll bool            `json:"includeAll"`
	Current    struct {
		Value any `json:"value"`
	} `json:"current"`
}

type dashDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  *dashDatasource `json:"datasource"`
	GridPos     struct{ X, Y, W, H int }
	Panels      []dashPanel `json:"panels"`
	Targets     []struct {
		RefID        string          `json:"refId"`
		Expr         string          `json:"expr"`
		LegendFormat string          `json:"legendFormat"`
		Datasource   *dashDatasource `json:"datasource"`
	} `json:"targets"`
}

// TestDashboardFiles checks the dashboards as Grafana loads them: unique uids, the
// agreed time range and refresh, a Prometheus datasource on every panel and target,
// at least one target per panel, variables whose "All" is ".*", legends that name
// labels the query keeps.
func TestDashboardFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dashDir, "*.json"))
	if err != nil || len(files) < 7 {
		t.Fatalf("want 7 dashboards in %s, got %v (%v)", dashDir, files, err)
	}
	uids, panels := map[string]string{}, 0
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var d dashModel
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("parse: %v", err)
			}
			if d.UID == "" || d.Title == "" {
				t.Errorf("uid %q title %q: both required", d.UID, d.Title)
			}
			if prev, ok := uids[d.UID]; ok {
				t.Errorf("uid %q also used by %s", d.UID, prev)
			}
			uids[d.UID] = f
			if d.SchemaVersion < 39 || d.Refresh != "10s" || d.Time.From != "now-15m" || d.Time.To != "now" {
				t.Errorf("schemaVersion %d refresh %q time %s..%s: want >= 39, 10s, now-15m..now",
					d.SchemaVersion, d.Refresh, d.Time.From, d.Time.To)
			}
			if !slices.Contains(d.Tags, "sluice") {
				t.Errorf("tags %v: want sluice (the dashboards link each other by tag)", d.Tags)
			}
			dashCheckVariables(t, d.Templating.List, b)
			ids := map[int]bool{}
			var walk func(ps []dashPanel)
			walk = func(ps []dashPanel) {
				for _, p := range ps {
					if ids[p.ID] {
						t.Errorf("panel %q: duplicate id %d", p.Title, p.ID)
					}
					ids[p.ID] = true
					if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
						t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
					}
					if p.Type == "row" {
						walk(p.Panels)
						continue
					}
					panels++
					dashCheckPanel(t, p)
				}
			}
			walk(d.Panels)
		})
	}
	t.Logf("%d dashboards, %d panels", len(files), panels)
}

// dashCheckPanel checks one (non-row) panel.
func dashCheckPanel(t *testing.T, p dashPanel) {
	t.Helper()
	if p.Title == "" || p.Description == "" {
		t.Errorf("panel %d (%q): title and description are required", p.ID, p.Title)
	}
	if !dashPromDatasource(p.Datasource) {
		t.Errorf("panel %q: datasource %+v, want prometheus ${datasource} or uid prometheus", p.Title, p.Datasource)
	}
	if len(p.Targets) == 0 {
		t.Errorf("panel %q: no targets", p.Title)
	}
	for _, tg := range p.Targets {
		if tg.RefID == "" || strings.TrimSpace(tg.Expr) == "" {
			t.Errorf("panel %q: target %q without refId or expr", p.Title, tg.RefID)
		}
		if tg.Datasource != nil && !dashPromDatasource(tg.Datasource) {
			t.Errorf("panel %q target %s: datasource %+v", p.Title, tg.RefID, tg.Datasource)
		}
		if strings.Contains(tg.Expr, "sluice_sink_") && !strings.Contains(p.Description, "issue 6") {
			t.Errorf("panel %q: sink panels must say their metrics come with the sink (issue 6)", p.Title)
		}
		allowed := dashLabelsOf(tg.Expr)
		for _, m := range regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`).FindAllStringSubmatch(tg.LegendFormat, -1) {
			if !allowed[m[1]] {
				t.Errorf("panel %q target %s: legend names label %q that no metric of the query has", p.Title, tg.RefID, m[1])
			}
		}
	}
}

func dashPromDatasource(ds *dashDatasource) bool {
	return ds != nil && ds.Type == "prometheus" && (ds.UID == "${datasource}" || ds.UID == "prometheus")
}

// dashCheckVariables checks the templating list: a datasource variable defaulting to uid
// "prometheus"; query variables whose All value is ".*" (what DashboardQueries
// substitutes) over label_values of a catalog metric; every variable used.
func dashCheckVariables(t *testing.T, vars []dashVariable, raw []byte) {
	t.Helper()
	hasDS := false
	for _, v := range vars {
		switch v.Type {
		case "datasource":
			hasDS = v.Name == "datasource" && strings.Contains(string(raw), `"uid": "${datasource}"`)
			if fmt.Sprint(v.Current.Value) != "prometheus" {
				t.Errorf("variable datasource: current %v, want prometheus", v.Current.Value)
			}
		case "query":
			if !v.IncludeAll || v.AllValue != monitoring.AllValue {
				t.Errorf("variable %s: includeAll %v allValue %q, want true and %q", v.Name, v.IncludeAll, v.AllValue, monitoring.AllValue)
			}
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil || q.Query != v.Definition {
				t.Errorf("variable %s: query %s and definition %q must agree (%v)", v.Name, v.Query, v.Definition, err)
			}
			m := regexp.MustCompile(`^label_values\((.+), *([a-zA-Z_][a-zA-Z0-9_]*)\)$`).FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
				continue
			}
			sel := regexp.MustCompile(`"\$[a-z]+"`).ReplaceAllString(m[1], `".*"`)
			if err := dashCheckExpr(sel, true); err != nil {
				t.Errorf("variable %s: %v", v.Name, err)
			}
			if !dashLabelsOf(sel)[m[2]] {
				t.Errorf("variable %s: label %q is not a label of %s", v.Name, m[2], m[1])
			}
			if !strings.Contains(string(raw), `=~\"$`+v.Name) {
				t.Errorf("variable %s: never used", v.Name)
			}
		default:
			t.Errorf("variable %s: type %q, want datasource or query", v.Name, v.Type)
		}
	}
	if !hasDS {
		t.Error("no datasource variable named datasource used by the panels")
	}
}

// TestDashboardsGenerated fails when a committed dashboard differs from what
// monitoring/grafana/gen writes: edit the generator, then run go generate ./monitoring/.
func TestDashboardsGenerated(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), goBin, "run", "./grafana/gen", "-check", "-out", dashDir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestDashboardProvisioning checks Grafana's provisioning files against the paths and
// names docker-compose and the dashboards rely on.
func TestDashboardProvisioning(t *testing.T) {
	var dashboards struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	dashReadYAML(t, "grafana/provisioning/dashboards/sluice.yml", &dashboards)
	if dashboards.APIVersion != 1 || len(dashboards.Providers) != 1 {
		t.Fatalf("dashboards provisioning: apiVersion %d, %d providers; want 1 and 1", dashboards.APIVersion, len(dashboards.Providers))
	}
	if p := dashboards.Providers[0]; p.Type != "file" || p.Options.Path != dashMountPath || p.Name == "" {
		t.Errorf("dashboards provider %+v: want a named file provider at %s", p, dashMountPath)
	}

	var sources struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			Type      string `yaml:"type"`
			UID       string `yaml:"uid"`
			URL       string `yaml:"url"`
			Access    string `yaml:"access"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	dashReadYAML(t, "grafana/provisioning/datasources/prometheus.yml", &sources)
	if sources.APIVersion != 1 || len(sources.Datasources) != 1 {
		t.Fatalf("datasource provisioning: apiVersion %d, %d datasources; want 1 and 1", sources.APIVersion, len(sources.Datasources))
	}
	ds := sources.Datasources[0]
	if ds.Type != "prometheus" || ds.UID != "prometheus" || ds.URL != "http://prometheus:9090" || ds.Access != "proxy" || !ds.IsDefault {
		t.Errorf("datasource %+v: want the default prometheus datasource, uid prometheus, proxy to http://prometheus:9090", ds)
	}
}

func dashReadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(false)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestDashboardQueriesSubstitution runs DashboardQueries on small dashboards: what it
// substitutes, where it finds targets, and what it refuses.
func TestDashboardQueriesSubstitution(t *testing.T) {
	vars := `"templating": {"list": [{"name": "datasource", "type": "datasource"},
		{"name": "job", "type": "query"}, {"name": "mode", "type": "custom"}, {"name": "step", "type": "interval"}]}`
	board := func(expr string) string {
		e, _ := json.Marshal(expr)
		return `{"uid": "u", ` + vars + `, "panels": [{"type": "timeseries", "title": "P", "targets": [{"refId": "A", "expr": ` + string(e) + `}]}]}`
	}
	cases := []struct {
		name    string
		files   map[string]string
		want    []monitoring.Query
		wantErr string
	}{
		{
			name:  "built-in intervals",
			files: map[string]string{"a.json": board(`rate(x[$__rate_interval]) + rate(x[${__interval}]) + increase(x[$__range])`)},
			want:  []monitoring.Query{{"u", "P", "A", `rate(x[1m]) + rate(x[1m]) + increase(x[15m])`}},
		},
		{
			name:  "variables inside =~ matchers",
			files: map[string]string{"a.json": board(`x{job=~"$job", m =~ "${mode}", s=~"agg\\.$job|$mode"}`)},
			want:  []monitoring.Query{{"u", "P", "A", `x{job=~".*", m =~ ".*", s=~"agg\\..*|.*"}`}},
		},
		{
			name:  "label_replace references stay",
			files: map[string]string{"a.json": board(`label_replace(x{job=~"$job"}, "a", "$1", "b", "(.*)")`)},
			want:  []monitoring.Query{{"u", "P", "A", `label_replace(x{job=~".*"}, "a", "$1", "b", "(.*)")`}},
		},
		{
			name: "rows, nested panels and file order",
			files: map[string]string{
				"b.json": `{"uid": "second", "panels": [{"type": "stat", "title": "S", "targets": [{"refId": "A", "expr": "up"}]}]}`,
				"a.json": `{"uid": "first", "panels": [
					{"type": "row", "title": "open", "panels": []},
					{"type": "timeseries", "title": "T", "targets": [{"refId": "A", "expr": "x"}, {"refId": "B", "expr": "y"}]},
					{"type": "row", "title": "closed", "collapsed": true, "panels": [
						{"type": "timeseries", "title": "N", "targets": [{"refId": "A", "expr": "z"}]}]}]}`,
			},
			want: []monitoring.Query{{"first", "T", "A", "x"}, {"first", "T", "B", "y"}, {"first", "N", "A", "z"}, {"second", "S", "A", "up"}},
		},
		{name: "variable in an equality matcher", files: map[string]string{"a.json": board(`x{job="$job"}`)}, wantErr: "inside a =~"},
		{name: "variable in a negative regex", files: map[string]string{"a.json": board(`x{job!~"$job"}`)}, wantErr: "inside a =~"},
		{name: "variable outside a string", files: map[string]string{"a.json": board(`topk($job, x)`)}, wantErr: "inside a =~"},
		{name: "undeclared variable", files: map[string]string{"a.json": board(`x{a=~"$nope"}`)}, wantErr: "not declared"},
		{name: "datasource variable", files: map[string]string{"a.json": board(`x{a=~"$datasource"}`)}, wantErr: `type "datasource"`},
		{name: "interval variable", files: map[string]string{"a.json": board(`rate(x[$step])`)}, wantErr: `type "interval"`},
		{name: "variable format", files: map[string]string{"a.json": board(`x{a=~"${job:regex}"}`)}, wantErr: "formats"},
		{name: "other built-in", files: map[string]string{"a.json": board(`x[$__range_s]`)}, wantErr: "not supported"},
		{name: "unterminated string", files: map[string]string{"a.json": board(`x{a=~"$job}`)}, wantErr: "unterminated"},
		{name: "empty expr", files: map[string]string{"a.json": board(` `)}, wantErr: "empty expr"},
		{name: "no uid", files: map[string]string{"a.json": `{"panels": []}`}, wantErr: "no uid"},
		{name: "bad json", files: map[string]string{"a.json": `{"uid": `}, wantErr: "parse"},
		{name: "no dashboards", files: map[string]string{"readme.md": "x"}, wantErr: "no *.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := monitoring.DashboardQueries(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestDashboardExprCheck shows that the structural PromQL check rejects what it should.
func TestDashboardExprCheck(t *testing.T) {
	cases := []struct {
		name, expr string
		raw        bool
		wantErr    string
	}{
		{name: "rate of a counter", expr: `sum by (stage) (rate(sluice_stage_records_in_total{job=~".*", stage=~".*"}[1m]))`},
		{name: "quantile", expr: `histogram_quantile(0.95, sum by (le, route) (rate(sluice_http_request_duration_seconds_bucket{route=~".*"}[1m])))`},
		{name: "gauge arithmetic", expr: `time() - min by (aggregation, source) (sluice_watermark_seconds{aggregation=~".*"})`},
		{name: "label_replace adds a label", expr: `sum by (aggregation) (label_replace(rate(sluice_stage_records_in_total{stage=~"agg\\..*"}[1m]), "aggregation", "$1", "stage", "agg\\.(.*)"))`},
		{name: "raw counter since start", expr: `sum by (stage) (sluice_state_restored_records_total)`, raw: true},
		{name: "unknown metric", expr: `rate(sluice_nope_total[1m])`, wantErr: "not in the catalog"},
		{name: "histogram without suffix", expr: `sluice_end_to_end_latency_seconds`, wantErr: "not in the catalog"},
		{name: "counter without rate", expr: `sum(sluice_dead_letters_total)`, wantErr: "without a range"},
		{name: "bucket without le", expr: `histogram_quantile(0.9, sum by (stage) (rate(sluice_end_to_end_latency_seconds_bucket[1m])))`, wantErr: "by (le"},
		{name: "bucket without quantile", expr: `sum(rate(sluice_end_to_end_latency_seconds_bucket[1m]))`, wantErr: "histogram_quantile"},
		{name: "unbalanced", expr: `sum(rate(sluice_dead_letters_total[1m])`, wantErr: "unclosed"},
		{name: "mismatched", expr: `sum(rate(sluice_dead_letters_total[1m)))`, wantErr: "mismatched"},
		{name: "unterminated string", expr: `sluice_consumer_lag{group=~"a}`, wantErr: "unterminated"},
		{name: "subquery range", expr: `rate(sluice_dead_letters_total[1m:10s])`, wantErr: "range"},
		{name: "left-over variable", expr: `sluice_consumer_lag{group=~"$group"}`, wantErr: "variable"},
		{name: "unknown label", expr: `sluice_consumer_lag{grup=~".*"}`, wantErr: "label"},
		{name: "unknown by label", expr: `sum by (stgae) (sluice_transaction_open_seconds)`, wantErr: "label"},
		{name: "bad regex", expr: `sluice_consumer_lag{group=~"("}`, wantErr: "regex"},
		{name: "unknown function", expr: `sum(rte(sluice_dead_letters_total[1m]))`, wantErr: "function"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := dashCheckExpr(tc.expr, tc.raw)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

var (
	dashMetricRE   = regexp.MustCompile(`\b(sluice|go|process|kafka)_[a-z_]+\b`)
	dashFuncRE     = regexp.MustCompile(`\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\(`)
	dashByRE       = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	dashRangeRE    = regexp.MustCompile(`^[0-9]+[smhdwy]$`)
	dashMatcherRE  = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*$`)
	dashReplaceRE  = regexp.MustCompile(`\blabel_replace\s*\(`)
	dashVariableRE = regexp.MustCompile(`\$\{|\$[a-zA-Z_]`)
)

// dashCheckExpr checks a substituted PromQL expression without a PromQL parser:
// balanced brackets and strings, ranges that are plain durations, no variable left,
// only catalog metrics with their labels, counters and histogram series under a range
// (unless raw: a "since start" panel reads counters as they are), buckets only in
// histogram_quantile over sum by (le, ...), and known functions only.
func dashCheckExpr(expr string, raw bool) error {
	masked, err := dashMaskStrings(expr)
	if err != nil {
		return err
	}
	if loc := dashVariableRE.FindStringIndex(expr); loc != nil {
		return fmt.Errorf("variable left at %q", expr[loc[0]:])
	}
	var stack []int
	for i := 0; i < len(masked); i++ {
		switch c := masked[i]; c {
		case '(', '{', '[':
			stack = append(stack, i)
		case ')', '}', ']':
			if len(stack) == 0 || masked[stack[len(stack)-1]] != map[byte]byte{')': '(', '}': '{', ']': '['}[c] {
				return fmt.Errorf("mismatched %q at %d", c, i)
			}
			open := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			switch c {
			case ']':
				if r := strings.TrimSpace(masked[open+1 : i]); !dashRangeRE.MatchString(r) {
					return fmt.Errorf("range [%s] is not a duration", r)
				}
			case '}':
				if err := dashCheckMatchers(expr[open+1:i], masked[open+1:i]); err != nil {
					return err
				}
			}
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q at %d", masked[stack[len(stack)-1]], stack[len(stack)-1])
	}
	for _, m := range dashFuncRE.FindAllStringSubmatch(masked, -1) {
		if !slices.Contains(dashFunctions, m[1]) {
			return fmt.Errorf("unknown function %q", m[1])
		}
	}
	labels := dashLabelsOf(expr)
	for _, loc := range dashMetricRE.FindAllStringIndex(masked, -1) {
		name := masked[loc[0]:loc[1]]
		m, series, err := dashLookup(name)
		if err != nil {
			return err
		}
		rest := strings.TrimLeft(masked[loc[1]:], " ")
		if strings.HasPrefix(rest, "{") {
			rest = strings.TrimLeft(rest[strings.IndexByte(rest, '}')+1:], " ")
		}
		// Matchers must name labels of this metric.
		if strings.HasPrefix(strings.TrimLeft(masked[loc[1]:], " "), "{") {
			body := masked[loc[1]:]
			start := strings.IndexByte(body, '{')
			end := strings.IndexByte(body, '}')
			for _, part := range strings.Split(body[start+1:end], ",") {
				if lm := regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)`).FindStringSubmatch(part); lm != nil {
					if !dashHasLabel(m, series, lm[1]) {
						return fmt.Errorf("%s has no label %q", name, lm[1])
					}
				}
			}
		}
		ranged := strings.HasPrefix(rest, "[")
		if (m.kind == "counter" || series != "") && !ranged && !raw {
			return fmt.Errorf("%s is read without a range: use rate or increase", name)
		}
		if series == "_bucket" && !strings.Contains(masked, "histogram_quantile(") {
			return fmt.Errorf("%s outside histogram_quantile", name)
		}
		if series == "_bucket" && !regexp.MustCompile(`sum by \(le\b`).MatchString(masked) {
			return fmt.Errorf("%s: aggregate buckets with sum by (le, ...)", name)
		}
	}
	for _, m := range dashByRE.FindAllStringSubmatch(masked, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !labels[l] {
				return fmt.Errorf("by (%s): label %q is on none of the query's metrics", m[1], l)
			}
		}
	}
	return nil
}

// dashLookup resolves a metric name to its catalog entry; series is the histogram
// suffix (_bucket, _count, _sum) or "".
func dashLookup(name string) (dashMetric, string, error) {
	if m, ok := dashCatalog[name]; ok && m.kind != "histogram" {
		return m, "", nil
	}
	for _, s := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, s); ok {
			if m, ok := dashCatalog[base]; ok && m.kind == "histogram" {
				return m, s, nil
			}
		}
	}
	return dashMetric{}, "", fmt.Errorf("metric %s is not in the catalog (histograms need _bucket, _count or _sum)", name)
}

func dashHasLabel(m dashMetric, series, l string) bool {
	return l == "job" || l == "instance" || slices.Contains(m.labels, l) || series == "_bucket" && l == "le"
}

// dashLabelsOf returns the labels a query's result can carry: those of its metrics,
// job, instance, le for buckets, and labels added by label_replace.
func dashLabelsOf(expr string) map[string]bool {
	out := map[string]bool{"job": true, "instance": true}
	masked, _ := dashMaskStrings(expr)
	for _, name := range dashMetricRE.FindAllString(masked, -1) {
		m, series, err := dashLookup(name)
		if err != nil {
			continue
		}
		for _, l := range m.labels {
			out[l] = true
		}
		if series == "_bucket" {
			out["le"] = true
		}
	}
	for _, l := range dashReplacedLabels(expr, masked) {
		out[l] = true
	}
	return out
}

// dashReplacedLabels returns the destination labels (second argument) of every
// label_replace call in expr; masked is expr with its strings masked.
func dashReplacedLabels(expr, masked string) []string {
	var out []string
	for _, loc := range dashReplaceRE.FindAllStringIndex(masked, -1) {
		depth, arg, start := 0, 0, loc[1]
	scan:
		for i := loc[1]; i < len(masked); i++ {
			switch masked[i] {
			case '(', '{', '[':
				depth++
			case ')', '}', ']':
				if depth == 0 {
					break scan
				}
				depth--
			case ',':
				if depth > 0 {
					continue
				}
				if arg++; arg == 2 {
					if l, err := strconv.Unquote(strings.TrimSpace(expr[start:i])); err == nil {
						out = append(out, l)
					}
					break scan
				}
				start = i + 1
			}
		}
	}
	return out
}

// dashCheckMatchers checks the matchers of one selector body: label op "string", and
// regexes that compile (Prometheus uses RE2 like Go).
func dashCheckMatchers(body, masked string) error {
	if strings.TrimSpace(body) == "" {
		return nil
	}
	start := 0
	for i := 0; i <= len(masked); i++ {
		if i < len(masked) && masked[i] != ',' {
			continue
		}
		part := body[start:i]
		start = i + 1
		m := dashMatcherRE.FindStringSubmatch(part)
		if m == nil {
			return fmt.Errorf("matcher %q is not label op \"value\"", part)
		}
		if m[2] == "=~" || m[2] == "!~" {
			v, err := strconv.Unquote(m[3])
			if err != nil {
				return fmt.Errorf("matcher %q: %w", part, err)
			}
			if _, err := regexp.Compile("^(?:" + v + ")$"); err != nil {
				return fmt.Errorf("matcher %q: bad regex: %w", part, err)
			}
		}
	}
	return nil
}

// dashMaskStrings returns expr with the contents of its string literals replaced by
// '_' (quotes kept), so brackets and names inside strings are not seen as syntax.
func dashMaskStrings(expr string) (string, error) {
	b := []byte(expr)
	var quote byte
	for i := 0; i < len(b); i++ {
		switch {
		case quote == 0:
			if b[i] == '"' || b[i] == '\'' || b[i] == '`' {
				quote = b[i]
			}
		case b[i] == '\\' && quote != '`' && i+1 < len(b):
			b[i], b[i+1] = '_', '_'
			i++
		case b[i] == quote:
			quote = 0
		default:
			b[i] = '_'
		}
	}
	if quote != 0 {
		return "", errors.New("unterminated string")
	}
	return string(b), nil
}
