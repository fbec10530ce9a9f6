package terraform_test

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// wantAlarm is one alarm of modules/alarms: the metrics it reads, their namespace (a
// literal, or "var.metrics_namespace" for what the ADOT sidecars publish), and the key
// of var.thresholds its threshold (or for_each) comes from.
type wantAlarm struct {
	resource  string
	namespace string
	metrics   []string
	threshold string
}

var wantAlarms = []wantAlarm{
	{"alb_5xx", "AWS/ApplicationELB", []string{"RequestCount", "HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count"}, "alb_5xx_percent"},
	{"alb_unhealthy_hosts", "AWS/ApplicationELB", []string{"UnHealthyHostCount"}, "alb_unhealthy_hosts"},
	{"msk_disk_used", "AWS/Kafka", []string{"KafkaDataLogsDiskUsed"}, "msk_disk_used_percent"},
	{"dead_letters", "var.metrics_namespace", []string{"sluice_dead_letter_depth"}, "dead_letters_new"},
	{"dead_letter_oldest_age", "var.metrics_namespace", []string{"sluice_dead_letter_oldest_age_seconds"}, "dead_letter_oldest_age_seconds"},
	{"e2e_latency_p95", "var.metrics_namespace", []string{"sluice_e2e_within_slo", "sluice_e2e_records"}, "e2e_latency_p95_seconds"},
	{"sink_freshness", "var.metrics_namespace", []string{"sluice_sink_freshness_seconds"}, "sink_freshness_seconds"},
	{"task_restarts", "AWS/Events", []string{"TriggeredRules"}, "task_restarts"},
}

// exprText is the source text of an expression.
func exprText(t *testing.T, e hclsyntax.Expression) string {
	t.Helper()
	src, err := os.ReadFile(e.Range().Filename)
	if err != nil {
		t.Fatal(err)
	}
	return string(e.Range().SliceBytes(src))
}

// alarmMetrics returns (namespace, metric_name) pairs of an alarm: its own, and those of
// its metric_query.metric blocks.
func alarmMetrics(t *testing.T, res *hclsyntax.Block) [][2]string {
	t.Helper()
	var out [][2]string
	pair := func(b *hclsyntax.Body) {
		ns, ok1 := b.Attributes["namespace"]
		name, ok2 := b.Attributes["metric_name"]
		if ok1 && ok2 {
			n, _ := literalString(name.Expr)
			space, ok := literalString(ns.Expr)
			if !ok {
				space = exprText(t, ns.Expr)
			}
			out = append(out, [2]string{space, n})
		}
	}
	pair(res.Body)
	for _, q := range res.Body.Blocks {
		if q.Type != "metric_query" {
			continue
		}
		for _, m := range q.Body.Blocks {
			if m.Type == "metric" {
				pair(m.Body)
			}
		}
	}
	return out
}

func TestAlarmsWatchTheirMetricsAndNotify(t *testing.T) {
	mods := loadModules(t)
	m := mods["modules/alarms"]
	if m == nil {
		t.Fatal("no modules/alarms")
	}
	thresholdType := ""
	for _, body := range m.files {
		for _, b := range body.Blocks {
			if b.Type == "variable" && b.Labels[0] == "thresholds" {
				thresholdType = exprText(t, b.Body.Attributes["type"].Expr)
			}
		}
	}
	for _, w := range wantAlarms {
		t.Run(w.resource, func(t *testing.T) {
			res := m.resources["aws_cloudwatch_metric_alarm."+w.resource]
			if res == nil {
				t.Fatalf("no aws_cloudwatch_metric_alarm.%s", w.resource)
			}
			got := alarmMetrics(t, res)
			for _, name := range w.metrics {
				if !slices.Contains(got, [2]string{w.namespace, name}) {
					t.Errorf("does not read %s from namespace %s (reads %v)", name, w.namespace, got)
				}
			}
			for _, g := range got {
				if !slices.Contains(w.metrics, g[1]) {
					t.Errorf("reads %s/%s, which this test does not expect", g[0], g[1])
				}
			}
			ref := "var.thresholds." + w.threshold
			th := exprText(t, res.Body.Attributes["threshold"].Expr)
			fe := ""
			if a, ok := res.Body.Attributes["for_each"]; ok {
				fe = exprText(t, a.Expr)
			}
			if th != ref && fe != ref {
				t.Errorf("threshold = %s, for_each = %q: want one of them to be %s", th, fe, ref)
			}
			if !regexp.MustCompile(`\b` + w.threshold + `\s*=`).MatchString(thresholdType) {
				t.Errorf("var.thresholds has no %s", w.threshold)
			}
			for _, attr := range []string{"alarm_actions", "ok_actions"} {
				a, ok := res.Body.Attributes[attr]
				if !ok || exprText(t, a.Expr) != "local.actions" {
					t.Errorf("%s must be local.actions (the SNS topic and var.alarm_action_arns)", attr)
				}
			}
			desc, ok := res.Body.Attributes["alarm_description"]
			if !ok || !strings.Contains(exprText(t, desc.Expr), "${var.thresholds."+w.threshold) && !strings.Contains(exprText(t, desc.Expr), "${each.value}") {
				t.Errorf("alarm_description should say the threshold (var.thresholds.%s)", w.threshold)
			}
		})
	}

	// local.actions sends to the module's topic and to var.alarm_action_arns.
	actions := ""
	for _, body := range m.files {
		for _, b := range body.Blocks {
			if b.Type == "locals" {
				if a, ok := b.Body.Attributes["actions"]; ok {
					actions = exprText(t, a.Expr)
				}
			}
		}
	}
	if actions != "concat([aws_sns_topic.alarms.arn], var.alarm_action_arns)" {
		t.Errorf("local.actions = %q, want the SNS topic and var.alarm_action_arns", actions)
	}
	if _, ok := m.resources["aws_sns_topic_subscription.email"]; !ok {
		t.Error("no e-mail subscriptions of var.alarm_email_addresses")
	}
	if topic := m.resources["aws_sns_topic.alarms"]; topic == nil || topic.Body.Attributes["kms_master_key_id"] == nil {
		t.Error("the alarm topic must exist and be encrypted (kms_master_key_id)")
	}
}

// TestAlarmMetricsArePublished checks that every Sluice metric an alarm reads is
// published by the ADOT sidecar of the service whose ServiceName the alarm names, with
// the dimensions it uses, and that the code exports the metric under that name.
func TestAlarmMetricsArePublished(t *testing.T) {
	ecs := loadEvalModule(t, "modules/ecs", nil)
	mods := loadModules(t)
	published := map[string]map[string][][]string{} // service -> metric -> dimension sets
	for _, svc := range []string{"process", "sink"} {
		call := mods["modules/ecs"].calls[svc]
		published[svc] = map[string][][]string{}
		if a, ok := call.Body.Attributes["emf_metrics"]; ok {
			v, diags := a.Expr.Value(ecs.ctx)
			if diags.HasErrors() {
				t.Fatalf("%s emf_metrics: %v", svc, diags)
			}
			for it := v.ElementIterator(); it.Next(); {
				k, sets := it.Element()
				for st := sets.ElementIterator(); st.Next(); {
					_, dims := st.Element()
					published[svc][k.AsString()] = append(published[svc][k.AsString()], ctyStrings(t, dims, k.AsString()))
				}
			}
		}
		if _, ok := call.Body.Attributes["e2e_latency_bucket"]; ok {
			published[svc]["sluice_e2e_within_slo"] = [][]string{{"ServiceName", "stage"}}
			published[svc]["sluice_e2e_records"] = [][]string{{"ServiceName", "stage"}}
		}
	}
	want := []struct {
		metric, service string
		dims            []string
	}{
		{"sluice_dead_letter_depth", "process", []string{"ServiceName", "topic"}},
		{"sluice_dead_letter_oldest_age_seconds", "process", []string{"ServiceName"}},
		{"sluice_sink_freshness_seconds", "sink", []string{"ServiceName"}},
		{"sluice_e2e_within_slo", "process", []string{"ServiceName", "stage"}},
		{"sluice_e2e_records", "process", []string{"ServiceName", "stage"}},
		{"sluice_e2e_within_slo", "sink", []string{"ServiceName", "stage"}},
		{"sluice_e2e_records", "sink", []string{"ServiceName", "stage"}},
	}
	for _, w := range want {
		if !slices.ContainsFunc(published[w.service][w.metric], func(d []string) bool { return slices.Equal(d, w.dims) }) {
			t.Errorf("%s: the %s sidecar does not publish it with dimensions %v (publishes %v)", w.metric, w.service, w.dims, published[w.service][w.metric])
		}
	}

	// The alarms name the publishing service in ServiceName.
	src, err := os.ReadFile("modules/alarms/alarms.tf")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ metric, svc string }{
		{"sluice_dead_letter_depth", `var.service_dimensions["process"]`},
		{"sluice_dead_letter_oldest_age_seconds", `var.service_dimensions["process"]`},
		{"sluice_sink_freshness_seconds", `var.service_dimensions["sink"]`},
	} {
		re := regexp.MustCompile(`metric_name\s*=\s*"` + c.metric + `"[^}]*ServiceName = ` + regexp.QuoteMeta(c.svc))
		if !re.Match(src) {
			t.Errorf("the alarm on %s must use ServiceName %s", c.metric, c.svc)
		}
	}

	// The code exports these metrics: the dead-letter gauges (dlq.Monitor), the
	// end-to-end histogram (process.Metrics) and the sink's freshness.
	reg := prometheus.NewRegistry()
	mon, err := dlq.NewMonitor(dlq.MonitorConfig{DLQTopics: []string{wire.DLQTopic("t")}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	process.NewMetrics(reg).ObserveEndToEnd("sink", "t", time.Second)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&text, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"sluice_dead_letter_depth", "sluice_dead_letter_oldest_age_seconds", "sluice_end_to_end_latency_seconds_count"} {
		if !regexp.MustCompile(`(?m)^` + name + `\{`).Match(text.Bytes()) {
			t.Errorf("the code exports no %s", name)
		}
	}
	// pipeline/sink builds its freshness collector unexported; its name is read from
	// the source.
	sinkSrc, err := os.ReadFile("../pipeline/sink/stage_metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(sinkSrc, []byte(`"sluice_sink_freshness_seconds"`)) {
		t.Error("pipeline/sink no longer defines sluice_sink_freshness_seconds")
	}

	// The allowed e2e bounds (modules/ecs/service e2e_latency_bucket validation) are
	// exactly the histogram's bucket bounds as the exposition format writes them, and the
	// defaults are among them.
	var buckets []string
	for _, m := range regexp.MustCompile(`sluice_end_to_end_latency_seconds_bucket\{[^}]*le="([^"]+)"`).FindAllStringSubmatch(text.String(), -1) {
		if m[1] != "+Inf" {
			buckets = append(buckets, m[1])
		}
	}
	svcVars, err := os.ReadFile("modules/ecs/service/variables.tf")
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`(?s)variable "e2e_latency_bucket".*?contains\(\[(.*?)\]`).FindSubmatch(svcVars)
	if valid == nil {
		t.Fatal("no validation of e2e_latency_bucket")
	}
	var allowed []string
	for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllSubmatch(valid[1], -1) {
		allowed = append(allowed, string(m[1]))
	}
	if !slices.Equal(allowed, buckets) {
		t.Errorf("e2e_latency_bucket allows %v, the histogram's bounds are %v", allowed, buckets)
	}
	def := ecs.ctx.Variables["var"].GetAttr("e2e_latency_p95_seconds")
	for _, stage := range []string{"clean", "sink"} {
		if b := def.GetAttr(stage).AsString(); !slices.Contains(buckets, b) {
			t.Errorf("default e2e bound of %s, %s, is not a bucket bound", stage, b)
		}
	}
}

// TestAlarmsCoverEveryDeadLetterTopicAndBroker evaluates the stack's alarm wiring: one
// dead-letter alarm per dead-letter topic the monitor watches, one disk alarm per broker.
func TestAlarmsCoverEveryDeadLetterTopicAndBroker(t *testing.T) {
	p := config.Default()
	var raw []string
	want := []string{wire.RetryDLQTopic, wire.SinkDLQTopic}
	for _, tp := range p.Topics {
		raw = append(raw, tp.Name)
		want = append(want, wire.DLQTopic(tp.Name))
	}
	stack := loadEvalModule(t, "stack", map[string]cty.Value{"event_topics": stringsVal(raw), "environment": cty.StringVal("test")})
	call := stack.block(t, "module", "alarms")
	v, diags := call.Body.Attributes["dead_letter_topics"].Expr.Value(stack.ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := ctyStrings(t, v, "dead_letter_topics")
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("dead-letter alarms for %v, want %v", got, want)
	}
	if a := call.Body.Attributes["msk_broker_count"]; a == nil || exprText(t, a.Expr) != "var.msk_broker_count" {
		t.Error("module alarms: msk_broker_count must be var.msk_broker_count (one disk alarm per broker)")
	}
	alarms := loadEvalModule(t, "modules/alarms", map[string]cty.Value{"msk_broker_count": cty.NumberIntVal(6)})
	ids := ctyStrings(t, alarms.local(t, "broker_ids"), "local.broker_ids")
	if !slices.Equal(ids, []string{"1", "2", "3", "4", "5", "6"}) {
		t.Errorf("broker ids %v, want 1..6", ids)
	}
}

// TestMSKOpenMonitoring checks that the brokers run the JMX and node exporters for
// Prometheus (open monitoring; ports 11001 and 11002, opened by modules/security).
func TestMSKOpenMonitoring(t *testing.T) {
	m := loadModules(t)["modules/msk"]
	cluster := m.resources["aws_msk_cluster.this"]
	if cluster == nil {
		t.Fatal("no aws_msk_cluster.this")
	}
	find := func(b *hclsyntax.Body, typ string) *hclsyntax.Body {
		for _, c := range b.Blocks {
			if c.Type == typ {
				return c.Body
			}
		}
		return nil
	}
	om := find(cluster.Body, "open_monitoring")
	if om == nil {
		t.Fatal("no open_monitoring")
	}
	prom := find(om, "prometheus")
	if prom == nil {
		t.Fatal("no open_monitoring.prometheus")
	}
	for _, exp := range []string{"jmx_exporter", "node_exporter"} {
		b := find(prom, exp)
		if b == nil {
			t.Errorf("no %s", exp)
			continue
		}
		a, ok := b.Attributes["enabled_in_broker"]
		if !ok {
			t.Errorf("%s: enabled_in_broker not set", exp)
			continue
		}
		if v, diags := a.Expr.Value(nil); diags.HasErrors() || !v.True() {
			t.Errorf("%s: enabled_in_broker must be true", exp)
		}
	}
	sec, err := os.ReadFile("modules/security/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"11001", "11002"} {
		if !bytes.Contains(sec, []byte(port)) {
			t.Errorf("modules/security opens no port %s for the exporters", port)
		}
	}
}
