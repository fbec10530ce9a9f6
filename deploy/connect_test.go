package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// The Kafka Connect alternative to `sluice sink` (docs/CONNECT.md).
const (
	connectorFile    = "deploy/connect/snowflake-sink.json"
	workerFile       = "deploy/connect/worker.properties"
	snowflakeClass   = "com.snowflake.kafka.connector.SnowflakeSinkConnector"
	snowflakeVersion = "2.5.0"
	// connectURLEnv names the worker scripts/test-real.sh starts (scripts/connect).
	connectURLEnv = "SLUICE_TEST_CONNECT_URL"
)

// connectorSpec is the body of PUT /connectors/{name}/config, with the name beside it.
type connectorSpec struct {
	Name   string            `json:"name"`
	Config map[string]string `json:"config"`
}

func loadConnector(t *testing.T) connectorSpec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), connectorFile))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c connectorSpec
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("%s: %v", connectorFile, err)
	}
	return c
}

// sinkTopics are the topics the connector must read: every clean topic and every
// aggregation result of the built-in pipeline, as `sluice sink` does.
func sinkTopics() []string {
	p := config.Default()
	var out []string
	for _, t := range p.Topics {
		out = append(out, wire.CleanTopic(t.Name))
	}
	for _, a := range p.Aggregations {
		out = append(out, wire.AggTopic(a.Name))
	}
	return out
}

// tableOf is the table the connector writes topic to. A clean topic goes to the table
// `sluice sink` writes it to (sink.TableName, restated here so that this package does not
// link the warehouse drivers): the topic without ".clean", in upper case, other
// characters as '_'. An agg.* topic goes to a table of its own, AGG_<NAME>: `sluice sink`
// merges every aggregation into one AGGREGATES table keyed by window, which an appending
// connector cannot do, and each aggregation has its own measure columns.
func tableOf(topic string) string {
	s := strings.ToUpper(strings.TrimSuffix(topic, ".clean"))
	return regexp.MustCompile(`[^A-Z0-9_]`).ReplaceAllString(s, "_")
}

func TestConnectorConfigStatic(t *testing.T) {
	c := loadConnector(t)
	cfg := c.Config
	if cfg["connector.class"] != snowflakeClass {
		t.Errorf("connector.class = %q, want %s", cfg["connector.class"], snowflakeClass)
	}
	topics := strings.Split(cfg["topics"], ",")
	want := sinkTopics()
	if got, w := slices.Sorted(slices.Values(topics)), slices.Sorted(slices.Values(want)); !slices.Equal(got, w) {
		t.Errorf("topics = %v, want the built-in pipeline's clean and agg topics %v", got, w)
	}
	mapped := map[string]string{}
	for _, pair := range strings.Split(cfg["snowflake.topic2table.map"], ",") {
		topic, table, ok := strings.Cut(pair, ":")
		if !ok {
			t.Fatalf("snowflake.topic2table.map entry %q is not topic:table", pair)
		}
		mapped[topic] = table
	}
	for _, topic := range want {
		if mapped[topic] != tableOf(topic) {
			t.Errorf("topic %s maps to table %q, want %q", topic, mapped[topic], tableOf(topic))
		}
	}
	if len(mapped) != len(want) {
		t.Errorf("snowflake.topic2table.map has %d entries, want %d", len(mapped), len(want))
	}

	// Settings docs/CONNECT.md explains; each one changes what lands in Snowflake.
	for key, val := range map[string]string{
		"snowflake.ingestion.method":          "SNOWPIPE_STREAMING", // exactly-once via channel offset tokens
		"consumer.override.isolation.level":   "read_committed",     // Sluice writes these topics transactionally
		"errors.tolerance":                    "none",               // stop, never skip a record
		"key.converter":                       "org.apache.kafka.connect.storage.StringConverter",
		"value.converter":                     "io.confluent.connect.avro.AvroConverter",
		"snowflake.enable.schematization":     "true",
		"value.converter.schema.registry.url": "${env:SCHEMA_REGISTRY_URL}",
	} {
		if cfg[key] != val {
			t.Errorf("%s = %q, want %q", key, cfg[key], val)
		}
	}
	// Secrets and per-environment values come from the worker's environment through the
	// env config provider; nothing secret is written in the file.
	placeholder := regexp.MustCompile(`^\$\{env:[A-Z_]+\}$`)
	for _, key := range []string{"snowflake.url.name", "snowflake.user.name", "snowflake.private.key",
		"snowflake.role.name", "snowflake.database.name", "snowflake.schema.name", "value.converter.basic.auth.user.info"} {
		if !placeholder.MatchString(cfg[key]) {
			t.Errorf("%s = %q, want an ${env:NAME} placeholder", key, cfg[key])
		}
	}

	props := readProperties(t, filepath.Join(repoRoot(t), workerFile))
	for key, val := range map[string]string{
		"config.providers":                        "env",
		"config.providers.env.class":              "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
		"consumer.isolation.level":                "read_committed",
		"connector.client.config.override.policy": "All",
	} {
		if props[key] != val {
			t.Errorf("%s: %s = %q, want %q", workerFile, key, props[key], val)
		}
	}
}

// readProperties reads a Java properties file of plain key=value lines.
func readProperties(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not key=value", path, line)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// validateResponse is the answer of PUT /connector-plugins/{class}/config/validate.
type validateResponse struct {
	Name       string `json:"name"`
	ErrorCount int    `json:"error_count"`
	Configs    []struct {
		Definition struct {
			Name string `json:"name"`
		} `json:"definition"`
		Value struct {
			Name   string   `json:"name"`
			Value  *string  `json:"value"`
			Errors []string `json:"errors"`
		} `json:"value"`
	} `json:"configs"`
}

// connectWorker returns the URL of the test worker, skipping when none runs (only
// scripts/test-real.sh starts one, against the real broker).
func connectWorker(t *testing.T) string {
	t.Helper()
	u := os.Getenv(connectURLEnv)
	if u == "" {
		t.Skipf("%s not set: no Kafka Connect worker (scripts/test-real.sh starts one)", connectURLEnv)
	}
	return strings.TrimRight(u, "/")
}

func doJSON(t *testing.T, method, u string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %.500s", method, u, err, b)
		}
	}
	if resp.StatusCode/100 != 2 && out != nil {
		t.Fatalf("%s %s: HTTP %d: %.2000s", method, u, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// TestConnectorValidatesOnWorker submits deploy/connect/snowflake-sink.json to a real
// Connect worker that has the connector jar on its plugin path, and fails on any error the
// connector or the worker reports. Then it starts the connector: Snowflake's own
// cross-field checks (converters allowed with Snowpipe Streaming, the role it requires)
// run only in start(), so the connector must get past them to the Snowflake connection,
// which fails on the unresolved ${env:SNOWFLAKE_URL} without leaving the machine.
func TestConnectorValidatesOnWorker(t *testing.T) {
	base := connectWorker(t)
	c := loadConnector(t)

	var plugins []struct{ Class, Type, Version string }
	doJSON(t, http.MethodGet, base+"/connector-plugins", nil, &plugins)
	if !slices.ContainsFunc(plugins, func(p struct{ Class, Type, Version string }) bool {
		return p.Class == snowflakeClass && p.Type == "sink" && p.Version == snowflakeVersion
	}) {
		t.Fatalf("worker has no %s %s sink plugin: %+v", snowflakeClass, snowflakeVersion, plugins)
	}

	cfg := map[string]string{"name": c.Name}
	for k, v := range c.Config {
		cfg[k] = v
	}
	var res validateResponse
	doJSON(t, http.MethodPut, base+"/connector-plugins/"+snowflakeClass+"/config/validate", cfg, &res)
	known := map[string]bool{}
	for _, ci := range res.Configs {
		known[ci.Definition.Name] = true
		if len(ci.Value.Errors) > 0 {
			t.Errorf("validate: %s: %s", ci.Value.Name, strings.Join(ci.Value.Errors, "; "))
		}
		// The worker passes ${env:...} through unresolved (the connector's password
		// fields answer "[hidden]", so the URL shows it), and a key given as a placeholder
		// makes the connector skip its Snowflake login check.
		if ci.Value.Name == "snowflake.url.name" && (ci.Value.Value == nil || !strings.HasPrefix(*ci.Value.Value, "${env:")) {
			t.Errorf("validate resolved snowflake.url.name to %v; the connector would try to log in", ci.Value.Value)
		}
	}
	if res.ErrorCount != 0 {
		t.Fatalf("validate: error_count = %d", res.ErrorCount)
	}
	// Every key is one the connector or the worker defines (a typo would be ignored
	// silently), or goes to the converter or the consumer, or is read by the connector from
	// the raw config without being in its ConfigDef.
	rawOnly := map[string]bool{
		// SnowflakeSinkConnectorConfig.ENABLE_SCHEMATIZATION_CONFIG, read in the
		// connector's config validator and sink service, not declared in its ConfigDef.
		"snowflake.enable.schematization": true,
	}
	for k := range cfg {
		switch {
		case known[k], rawOnly[k],
			strings.HasPrefix(k, "value.converter."), strings.HasPrefix(k, "key.converter."),
			strings.HasPrefix(k, "consumer.override."):
		default:
			t.Errorf("%s: %q is neither a connector nor a worker setting", connectorFile, k)
		}
	}
	if t.Failed() {
		return
	}

	// Start it under a throwaway name and wait for the connector task to settle.
	name := "sluice-test-" + fmt.Sprint(time.Now().UnixNano())
	connURL := base + "/connectors/" + url.PathEscape(name)
	t.Cleanup(func() {
		req, err := http.NewRequest(http.MethodDelete, connURL, nil)
		if err == nil {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	})
	cfg["name"] = name
	var created map[string]any
	doJSON(t, http.MethodPut, connURL+"/config", cfg, &created)
	var st struct {
		Connector struct {
			State string `json:"state"`
			Trace string `json:"trace"`
		} `json:"connector"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if code := doJSON(t, http.MethodGet, connURL+"/status", nil, nil); code == http.StatusOK {
			doJSON(t, http.MethodGet, connURL+"/status", nil, &st)
			if st.Connector.State == "FAILED" || st.Connector.State == "RUNNING" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connector still %q after 60 s", st.Connector.State)
		}
		time.Sleep(200 * time.Millisecond) // polling a real worker, bounded by the deadline
	}
	if strings.Contains(st.Connector.Trace, "Invalid input connector configuration") {
		t.Fatalf("the connector refused its config at start:\n%.3000s", st.Connector.Trace)
	}
	if st.Connector.State != "FAILED" || !strings.Contains(st.Connector.Trace, "Error Code: 0007") {
		t.Fatalf("connector state %s, want FAILED at the Snowflake URL (error 0007) after its config checks:\n%.3000s",
			st.Connector.State, st.Connector.Trace)
	}
}
