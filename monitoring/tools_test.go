package monitoring

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The files under test, relative to this package's directory.
const (
	prometheusDir    = "prometheus"
	prometheusConfig = "prometheus.yml"
	alertRulesFile   = "alerts.yml"
	alertTestsFile   = "alerts_test.yml"
	alertmanagerDir  = "alertmanager"
	alertmanagerFile = "alertmanager.yml"
)

// toolTimeout bounds one run of promtool or amtool; each takes well under a second.
const toolTimeout = time.Minute

// installHint says how to get the tools; `make deps` runs the same line.
const installHint = "install promtool and amtool with `apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager` (`make deps` does)"

// execTool runs tool with args in dir and returns its combined output. HOME points at a
// fresh directory so that a user's ~/.config/amtool cannot change the result. A missing
// tool fails the test: these checks must never pass by being skipped.
func execTool(t *testing.T, dir, tool string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is not on PATH (%v): %s", tool, err, installHint)
	}
	ctx, cancel := context.WithTimeout(t.Context(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no answer within %s\n%s", tool, strings.Join(args, " "), toolTimeout, out.String())
	}
	return out.String(), err
}

// mustExecTool is execTool for a run that must succeed; on failure the test prints the
// tool's output.
func mustExecTool(t *testing.T, dir, tool string, args ...string) string {
	t.Helper()
	out, err := execTool(t, dir, tool, args...)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", tool, strings.Join(args, " "), dir, err, out)
	}
	t.Logf("%s %s:\n%s", tool, strings.Join(args, " "), out)
	return out
}

// TestPromtoolCheckConfig checks prometheus.yml, and through its rule_files alerts.yml.
func TestPromtoolCheckConfig(t *testing.T) {
	t.Parallel()
	out := mustExecTool(t, prometheusDir, "promtool", "check", "config", "--lint=all", "--lint-fatal", prometheusConfig)
	if !strings.Contains(out, "Checking "+alertRulesFile) {
		t.Errorf("promtool check config did not check the rule file %s (rule_files path wrong?):\n%s", alertRulesFile, out)
	}
}

// TestPromtoolCheckRules checks alerts.yml on its own, with every lint fatal.
func TestPromtoolCheckRules(t *testing.T) {
	t.Parallel()
	mustExecTool(t, prometheusDir, "promtool", "check", "rules", "--lint=all", "--lint-fatal", alertRulesFile)
}

// TestPromtoolTestRules runs the alert rules' unit tests.
func TestPromtoolTestRules(t *testing.T) {
	t.Parallel()
	mustExecTool(t, prometheusDir, "promtool", "test", "rules", alertTestsFile)
}

// TestAmtoolCheckConfig checks alertmanager.yml.
func TestAmtoolCheckConfig(t *testing.T) {
	t.Parallel()
	mustExecTool(t, alertmanagerDir, "amtool", "check-config", alertmanagerFile)
}

// TestAmtoolRoutes checks that every alert in alerts.yml reaches the receiver its
// severity calls for: "page" the pager, anything else the default receiver.
func TestAmtoolRoutes(t *testing.T) {
	t.Parallel()
	rules := readAlertRules(t, filepath.Join(prometheusDir, alertRulesFile))
	for _, r := range rules {
		want := "default"
		if r.Labels["severity"] == "page" {
			want = "pager"
		}
		t.Run(r.Alert, func(t *testing.T) {
			mustExecTool(t, alertmanagerDir, "amtool", "config", "routes", "test",
				"--config.file="+alertmanagerFile, "--verify.receivers="+want,
				"alertname="+r.Alert, "severity="+r.Labels["severity"], "job=sluice-process")
		})
	}
}

// TestToolsCatchMistakes proves the checks above can fail: each case feeds a tool a
// broken file and expects it to refuse.
func TestToolsCatchMistakes(t *testing.T) {
	t.Parallel()
	rules, err := os.ReadFile(filepath.Join(prometheusDir, alertRulesFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files map[string]string
		tool  string
		args  []string
	}{
		{
			name:  "rule with an unbalanced expression",
			files: map[string]string{"rules.yml": "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]\n"},
			tool:  "promtool", args: []string{"check", "rules", "rules.yml"},
		},
		{
			name:  "config whose rule file is missing",
			files: map[string]string{"prometheus.yml": "rule_files: [missing.yml]\n"},
			tool:  "promtool", args: []string{"check", "config", "prometheus.yml"},
		},
		{
			name: "unit test expecting a fresh sink table to be reported as stale",
			files: map[string]string{alertRulesFile: string(rules), "t.yml": `rule_files: [alerts.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'sluice_sink_freshness_seconds{job="sluice",table="T"}'
        values: "100x20"
    alert_rule_test:
      - eval_time: 10m
        alertname: SluiceSinkFreshnessTooOld
        exp_alerts:
          - exp_labels: {severity: page, job: sluice, table: T}
`},
			tool: "promtool", args: []string{"test", "rules", "t.yml"},
		},
		{
			name:  "route to an undefined receiver",
			files: map[string]string{"am.yml": "route:\n  receiver: nobody\nreceivers:\n  - name: default\n"},
			tool:  "amtool", args: []string{"check-config", "am.yml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, err := execTool(t, dir, tt.tool, tt.args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("%s %s accepted a broken file (err %v):\n%s", tt.tool, strings.Join(tt.args, " "), err, out)
			}
		})
	}
}

// alertRule is one rule of a Prometheus rule file.
type alertRule struct {
	Alert         string            `yaml:"alert"`
	Record        string            `yaml:"record"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for"`
	KeepFiringFor string            `yaml:"keep_firing_for"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

// readAlertRules returns the alerting rules of a rule file, refusing unknown keys (a
// misspelt "annotation:" would otherwise vanish silently).
func readAlertRules(t *testing.T, path string) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name     string      `yaml:"name"`
			Interval string      `yaml:"interval"`
			Limit    int         `yaml:"limit"`
			Rules    []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	decodeYAML(t, path, &f, true)
	var out []alertRule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no alerting rules", path)
	}
	return out
}

// ruleTests is the part of a `promtool test rules` file the coverage check reads.
type ruleTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTests []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// decodeYAML decodes the YAML file at path into v. strict refuses keys v does not name;
// the unit-test file is read loosely because ruleTests names only what the coverage
// check needs.
func decodeYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// promDuration is a Prometheus duration such as "5m" or "1h30m".
var promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)

// TestAlertRulesCovered enforces the rules every alert follows: a CamelCase name starting
// with Sluice, a non-zero `for`, a severity of page or warning, summary and description
// annotations naming labels, expressions over catalog metrics only, and unit tests in
// alerts_test.yml both firing (with labels and annotations) and not firing. A test naming
// an alert that does not exist fails too: promtool passes an empty expectation for an
// unknown name.
func TestAlertRulesCovered(t *testing.T) {
	t.Parallel()
	rules := readAlertRules(t, filepath.Join(prometheusDir, alertRulesFile))
	var tests ruleTests
	decodeYAML(t, filepath.Join(prometheusDir, alertTestsFile), &tests, false)
	if !slices.Contains(tests.RuleFiles, alertRulesFile) {
		t.Errorf("%s: rule_files %v does not include %s", alertTestsFile, tests.RuleFiles, alertRulesFile)
	}

	firing, quiet := map[string]int{}, map[string]int{}
	for _, g := range tests.Tests {
		for _, s := range g.InputSeries {
			name, _, _ := strings.Cut(s.Series, "{")
			if !catalogMetric(strings.TrimSpace(name)) {
				t.Errorf("%s: input series %q is not a catalog metric", alertTestsFile, s.Series)
			}
		}
		for _, c := range g.AlertRuleTests {
			if len(c.ExpAlerts) == 0 {
				quiet[c.Alertname]++
				continue
			}
			firing[c.Alertname]++
			for _, a := range c.ExpAlerts {
				if a.ExpLabels["severity"] == "" || a.ExpAnnotations["summary"] == "" || a.ExpAnnotations["description"] == "" {
					t.Errorf("%s: %s at %s: an expected alert needs exp_labels.severity and exp_annotations summary and description",
						alertTestsFile, c.Alertname, c.EvalTime)
				}
			}
		}
	}

	seen := map[string]bool{}
	name := regexp.MustCompile(`^Sluice[A-Z][A-Za-z0-9]*$`)
	for _, r := range rules {
		t.Run(r.Alert, func(t *testing.T) {
			if seen[r.Alert] {
				t.Errorf("alert defined twice")
			}
			seen[r.Alert] = true
			if !name.MatchString(r.Alert) {
				t.Errorf("name is not CamelCase with prefix Sluice")
			}
			if !promDuration.MatchString(r.For) || !strings.ContainsAny(r.For, "123456789") {
				t.Errorf("for: %q, want a non-zero duration", r.For)
			}
			if s := r.Labels["severity"]; s != "page" && s != "warning" {
				t.Errorf("labels.severity = %q, want page or warning", s)
			}
			for _, a := range []string{"summary", "description"} {
				if !strings.Contains(r.Annotations[a], "{{ $labels.") {
					t.Errorf("annotations.%s = %q, want text naming {{ $labels.<label> }}", a, r.Annotations[a])
				}
			}
			for _, m := range promqlMetricNames(r.Expr) {
				if !catalogMetric(m) {
					t.Errorf("expr uses %s, which is not in the metric catalog", m)
				}
			}
			if firing[r.Alert] == 0 {
				t.Errorf("%s has no case where it fires (exp_alerts non-empty)", alertTestsFile)
			}
			if quiet[r.Alert] == 0 {
				t.Errorf("%s has no case where it does not fire (exp_alerts: [])", alertTestsFile)
			}
		})
	}
	for a := range firing {
		if !seen[a] {
			t.Errorf("%s tests alert %q, which alerts.yml does not define", alertTestsFile, a)
		}
	}
	for a := range quiet {
		if !seen[a] {
			t.Errorf("%s tests alert %q, which alerts.yml does not define", alertTestsFile, a)
		}
	}
}

// catalogMetrics are the metric families Sluice serves (docs/DESIGN.md#metrics).
// Histograms also serve _bucket, _count and _sum.
var catalogMetrics = map[string]bool{
	"sluice_http_request_duration_seconds":        true,
	"sluice_ingest_events_total":                  true,
	"sluice_ingest_requests_rejected_total":       true,
	"sluice_ingest_produce_duration_seconds":      true,
	"sluice_stage_records_in_total":               true,
	"sluice_stage_records_out_total":              true,
	"sluice_stage_transactions_total":             true,
	"sluice_stage_transaction_duration_seconds":   true,
	"sluice_transaction_open_seconds":             true,
	"sluice_stage_sessions_replaced_total":        true,
	"sluice_state_restore_duration_seconds":       true,
	"sluice_state_restored_records_total":         true,
	"sluice_state_keys":                           true,
	"sluice_state_restores_total":                 true,
	"sluice_state_restored_records_by_mode_total": true,
	"sluice_state_disk_bytes":                     true,
	"sluice_state_cache_bytes":                    true,
	"sluice_state_expiry_backlog":                 true,
	"sluice_state_largest_tombstone_batch":        true,
	"sluice_clean_duplicates_total":               true,
	"sluice_dead_letters_total":                   true,
	"sluice_end_to_end_latency_seconds":           true,
	"sluice_watermark_seconds":                    true,
	"sluice_stream_time_seconds":                  true,
	"sluice_stream_time_lag_seconds":              true,
	"sluice_open_windows":                         true,
	"sluice_late_events_total":                    true,
	"sluice_window_results_total":                 true,
	"sluice_retries_total":                        true,
	"sluice_retry_redeliveries_total":             true,
	"sluice_stage_partition_holds_total":          true,
	"sluice_circuit_breaker_state":                true,
	"sluice_dead_letter_depth":                    true,
	"sluice_dead_letter_oldest_age_seconds":       true,
	"sluice_retry_depth":                          true,
	"sluice_dead_letter_monitor_errors_total":     true,
	"sluice_consumer_lag":                         true,
	"sluice_build_info":                           true,
	"sluice_sink_rows_total":                      true,
	"sluice_sink_flush_duration_seconds":          true,
	"sluice_sink_freshness_seconds":               true,
}

// brokerMetrics are the brokers' metrics the alerts read: the JMX exporter's names from
// kafka/jmx-exporter.yml (MSK open monitoring serves the same), and the node exporter's
// filesystem metrics of the broker hosts.
var brokerMetrics = map[string]bool{
	"kafka_server_replicamanager_underreplicatedpartitions":   true,
	"kafka_server_replicamanager_underminisrpartitioncount":   true,
	"kafka_controller_kafkacontroller_offlinepartitionscount": true,
	"kafka_controller_kafkacontroller_activecontrollercount":  true,
	"node_filesystem_avail_bytes":                             true,
	"node_filesystem_size_bytes":                              true,
}

// catalogMetric reports whether name is served by Sluice: a catalog family (or a
// histogram's series), a franz-go client metric (sluice_kafka_*), a Go runtime or process
// collector metric, Prometheus' own up, or a broker metric (brokerMetrics).
func catalogMetric(name string) bool {
	switch {
	case catalogMetrics[name], name == "up", brokerMetrics[name],
		strings.HasPrefix(name, "sluice_kafka_"), strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"):
		return true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && catalogMetrics[base] {
			return true
		}
	}
	return false
}

var (
	// promqlString is a quoted PromQL string; its contents are label values and regexes,
	// never metric names.
	promqlString = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	// promqlMetric is an identifier in the namespaces Sluice exports, or of the brokers'
	// JMX exporter and the broker hosts' node exporter.
	promqlMetric = regexp.MustCompile(`\b(?:sluice|process|go|kafka|node)_[A-Za-z0-9_:]*`)
)

// promqlMetricNames returns the metric names an expression selects, found lexically:
// identifiers with a Sluice, process or Go prefix outside quoted strings.
func promqlMetricNames(expr string) []string {
	return promqlMetric.FindAllString(promqlString.ReplaceAllString(expr, `""`), -1)
}

// TestPromqlMetricNames pins the lexical metric-name scan the coverage check relies on.
func TestPromqlMetricNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"selector with labels", `rate(sluice_dead_letters_total{class="permanent"}[5m]) > 0`, []string{"sluice_dead_letters_total"}},
		{"label values are not names", `label_replace(sluice_consumer_lag, "stage", "$1", "group", "sluice_x[.](.+)")`, []string{"sluice_consumer_lag"}},
		{"several names and process metrics", `a_b unless sluice_retry_depth and on (job) process_start_time_seconds offset 5m`, []string{"sluice_retry_depth", "process_start_time_seconds"}},
		{"histogram series", `histogram_quantile(0.95, sum by (le) (rate(sluice_http_request_duration_seconds_bucket[5m])))`, []string{"sluice_http_request_duration_seconds_bucket"}},
		{"broker metrics", `sum by (job) (kafka_server_replicamanager_underreplicatedpartitions) > 0 and node_filesystem_avail_bytes{fstype!~"tmpfs"}`, []string{"kafka_server_replicamanager_underreplicatedpartitions", "node_filesystem_avail_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := promqlMetricNames(tt.expr); !slices.Equal(got, tt.want) {
				t.Errorf("promqlMetricNames(%q) = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
	if catalogMetric("sluice_dead_letter_total") {
		t.Error(`catalogMetric accepts the misspelt "sluice_dead_letter_total"`)
	}
}
