package terraform_test

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// The optional Kafka Connect worker (modules/connect) runs the connector of
// deploy/connect/snowflake-sink.json with the worker settings of
// deploy/connect/worker.properties. These tests hold the Terraform to those files: its
// MSK policy allows exactly what the worker and connector do, its worker properties are
// the file's (but for the brokers and IAM authentication), and every ${env:...} the
// connector config uses is set in the task.

const (
	connectorFile = "../deploy/connect/snowflake-sink.json"
	workerFile    = "../deploy/connect/worker.properties"
)

type connectorConfig struct {
	Name   string            `json:"name"`
	Config map[string]string `json:"config"`
}

func readConnector(t *testing.T) connectorConfig {
	t.Helper()
	b, err := os.ReadFile(connectorFile)
	if err != nil {
		t.Fatalf("the Connect alternative's connector config: %v", err)
	}
	var c connectorConfig
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", connectorFile, err)
	}
	return c
}

// readProperties parses a Java properties file of key=value lines and # comments.
func readProperties(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	props := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not key=value", path, line)
		}
		props[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return props
}

func loadConnectModule(t *testing.T, p *config.Pipeline, connector string) *evalModule {
	t.Helper()
	var raw []string
	for _, tp := range p.Topics {
		raw = append(raw, tp.Name)
	}
	return loadEvalModule(t, "modules/connect", map[string]cty.Value{
		"name":                 cty.StringVal("sluice-test"),
		"event_topics":         stringsVal(raw),
		"msk_cluster_name":     cty.StringVal(testClusterName),
		"msk_cluster_uuid":     cty.StringVal(testClusterUUID),
		"connector_name":       cty.StringVal(connector),
		"bootstrap_brokers":    cty.StringVal("b-1.example:9098"),
		"registry_url":         cty.StringVal("https://registry.example"),
		"snowflake_secret_arn": cty.StringVal("arn:aws:secretsmanager:eu-central-1:123456789012:secret:sf"),
		"snowflake": cty.ObjectVal(map[string]cty.Value{
			"account": cty.StringVal("org-acct"), "user": cty.StringVal("U"), "role": cty.StringVal("R"),
			"database": cty.StringVal("D"), "schema": cty.StringVal("S"),
		}),
	})
}

func TestConnectPolicyMatchesWhatTheWorkerDoes(t *testing.T) {
	p := config.Default()
	conn := readConnector(t)
	worker := readProperties(t, workerFile)
	m := loadConnectModule(t, p, conn.Name)

	// What the connector reads: its topics, which are every clean and aggregate topic.
	var want []string
	for _, tp := range p.Topics {
		want = append(want, wire.CleanTopic(tp.Name))
	}
	for _, a := range p.Aggregations {
		want = append(want, wire.AggTopic(a.Name))
	}
	topics := strings.Split(conn.Config["topics"], ",")
	sort.Strings(topics)
	sort.Strings(want)
	if !slices.Equal(topics, want) {
		t.Fatalf("%s reads %v; the IAM policy is written for every clean and aggregate topic %v", connectorFile, topics, want)
	}

	// The worker's group and internal topics are worker.properties'.
	internal := m.local(t, "internal_topics")
	if got := internal.GetAttr("configs").AsString(); got != worker["config.storage.topic"] {
		t.Errorf("config topic %s, worker.properties says %s", got, worker["config.storage.topic"])
	}
	if got := internal.GetAttr("offsets").AsString(); got != worker["offset.storage.topic"] {
		t.Errorf("offset topic %s, worker.properties says %s", got, worker["offset.storage.topic"])
	}
	if got := internal.GetAttr("status").AsString(); got != worker["status.storage.topic"] {
		t.Errorf("status topic %s, worker.properties says %s", got, worker["status.storage.topic"])
	}
	if got := m.local(t, "worker_group").AsString(); got != worker["group.id"] {
		t.Errorf("worker group %s, worker.properties says %s", got, worker["group.id"])
	}

	acc := newAccess()
	acc.read.add(topics...)
	for _, k := range []string{"config.storage.topic", "offset.storage.topic", "status.storage.topic"} {
		tp := worker[k]
		acc.read.add(tp)
		acc.write.add(tp)
		acc.create.add(tp)
		acc.configs.add(tp) // the worker checks they are compacted
	}
	// A sink connector's consumer group is connect-<connector name>.
	groups := []string{worker["group.id"], "connect-" + conn.Name}
	acc.join.add(groups...)

	universe := map[string]set{kindCluster: {kafkaARN(kindCluster, ""): true}, kindTopic: {}, kindGroup: {}, kindTxn: {}}
	for _, s := range kafka.TopicsFor(p) {
		universe[kindTopic].add(kafkaARN(kindTopic, s.Name))
	}
	for _, k := range []string{"config.storage.topic", "offset.storage.topic", "status.storage.topic"} {
		universe[kindTopic].add(kafkaARN(kindTopic, worker[k]))
	}
	for _, g := range append(service.Groups(p), groups...) {
		universe[kindGroup].add(kafkaARN(kindGroup, g))
	}
	stmts := policyStatements(t, m.block(t, "data", "aws_iam_policy_document", "msk").Body, m.ctx)
	for _, e := range checkPolicy(stmts, acc.needs(), universe) {
		t.Error(e)
	}
}

func TestConnectWorkerRunsTheRepositoryConfig(t *testing.T) {
	p := config.Default()
	conn := readConnector(t)
	worker := readProperties(t, workerFile)
	m := loadConnectModule(t, p, conn.Name)

	// worker.properties, but for the brokers, which are MSK's.
	props := m.local(t, "worker_properties")
	for k, v := range worker {
		if k == "bootstrap.servers" {
			continue
		}
		if !props.Type().HasAttribute(k) {
			t.Errorf("worker setting %s=%s of %s is not set in the task", k, v, workerFile)
			continue
		}
		if got := props.GetAttr(k).AsString(); got != v {
			t.Errorf("worker setting %s: task has %q, %s has %q", k, got, workerFile, v)
		}
	}
	for _, k := range []string{"security.protocol", "consumer.sasl.mechanism", "producer.sasl.jaas.config", "admin.sasl.client.callback.handler.class"} {
		if !props.Type().HasAttribute(k) {
			t.Errorf("the task does not set %s (MSK IAM authentication)", k)
		}
	}

	// Every ${env:NAME} of the connector config is set in the task, the private key from
	// Secrets Manager.
	env := map[string]bool{}
	for it := m.local(t, "environment").ElementIterator(); it.Next(); {
		k, _ := it.Element()
		env[k.AsString()] = true
	}
	secret := map[string]bool{}
	for it := m.local(t, "secrets").ElementIterator(); it.Next(); {
		_, s := it.Element()
		secret[s.GetAttr("name").AsString()] = true
	}
	for _, v := range conn.Config {
		for _, mm := range regexp.MustCompile(`\$\{env:([A-Za-z0-9_]+)\}`).FindAllStringSubmatch(v, -1) {
			if !env[mm[1]] && !secret[mm[1]] {
				t.Errorf("the connector config uses ${env:%s}, which the task does not set", mm[1])
			}
		}
	}
	if !secret["SNOWFLAKE_PRIVATE_KEY"] || env["SNOWFLAKE_PRIVATE_KEY"] {
		t.Error("SNOWFLAKE_PRIVATE_KEY must come from Secrets Manager (secrets), never a plain variable")
	}
}
