package deploy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// TestComposeKafkaJMXExporter: the compose stack scrapes its broker the way the fault
// suite's test brokers are scraped (scripts/kafka/kafka-cluster.sh): the kafka service
// runs the Prometheus JMX exporter javaagent of the version scripts/kafka/jmx-exporter-pom.xml
// pins, with the rules file monitoring/kafka/jmx-exporter.yml; the jar comes from a
// one-shot service that checks its SHA-256 and that kafka waits for; and
// deploy/prometheus/prometheus.yml scrapes exactly the agent's port on the kafka service.
func TestComposeKafkaJMXExporter(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t, nil)
	kafka := serviceByImage(t, p, "apache/kafka:")

	pom, err := os.ReadFile(filepath.Join(root, "scripts/kafka/jmx-exporter-pom.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<jmx\.exporter\.version>([^<]+)</jmx\.exporter\.version>`).FindSubmatch(pom)
	if m == nil {
		t.Fatal("scripts/kafka/jmx-exporter-pom.xml: no jmx.exporter.version")
	}
	version := string(m[1])
	jarName := "jmx_prometheus_javaagent-" + version + ".jar"

	// -javaagent:<jar>=[host:]<port>:<rules>
	opts := env(kafka, "KAFKA_OPTS")
	am := regexp.MustCompile(`-javaagent:(\S+?)=(?:([^:\s]+):)?(\d+):(\S+)`).FindStringSubmatch(opts)
	if am == nil {
		t.Fatalf("service %s: KAFKA_OPTS %q runs no javaagent: nothing serves the broker's metrics", kafka.Name, opts)
	}
	jar, host, port, rules := am[1], am[2], am[3], am[4]
	if path.Base(jar) != jarName {
		t.Errorf("javaagent %s, want %s (the version of scripts/kafka/jmx-exporter-pom.xml)", jar, jarName)
	}
	if host == "127.0.0.1" || host == "localhost" {
		t.Errorf("javaagent listens on %s only: Prometheus reaches it over the compose network", host)
	}

	// The rules: the same file as the test brokers'.
	if src := hostPath(kafka, rules); src != filepath.Join(root, "monitoring/kafka/jmx-exporter.yml") {
		t.Errorf("rules %s come from %q, want monitoring/kafka/jmx-exporter.yml (the test brokers' rules)", rules, src)
	}

	// The jar: a named volume that a one-shot service fills (SHA-256 checked) and kafka
	// waits for.
	var vol string
	for _, v := range kafka.Volumes {
		if v.Type == types.VolumeTypeVolume && (path.Dir(jar) == v.Target || strings.HasPrefix(jar, v.Target+"/")) {
			vol = v.Source
		}
	}
	if vol == "" {
		t.Fatalf("service %s: no volume holds %s", kafka.Name, jar)
	}
	var fetcher *types.ServiceConfig
	for _, s := range p.Services {
		if s.Name == kafka.Name {
			continue
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source == vol && !v.ReadOnly {
				fetcher = &s
			}
		}
	}
	if fetcher == nil {
		t.Fatalf("no service writes volume %s: nothing puts the javaagent there", vol)
	}
	if !oneShot(*fetcher) {
		t.Errorf("service %s fills %s: it must run once and exit (restart: \"no\")", fetcher.Name, vol)
	}
	if dep, ok := kafka.DependsOn[fetcher.Name]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("service %s must wait for %s (service_completed_successfully): depends_on = %v", kafka.Name, fetcher.Name, kafka.DependsOn)
	}
	script := strings.Join(append(append([]string{}, fetcher.Entrypoint...), fetcher.Command...), " ")
	if !strings.Contains(script, "/"+version+"/"+jarName) {
		t.Errorf("service %s does not fetch %s/%s", fetcher.Name, version, jarName)
	}
	sum := regexp.MustCompile(`\b[0-9a-f]{64}\b`).FindString(script)
	if sum == "" || !strings.Contains(script, "sha256sum -c") {
		t.Errorf("service %s does not check the jar's SHA-256", fetcher.Name)
	}
	// kafka-cluster.sh keeps the jar it fetched with Maven (which checks Maven Central's
	// checksums): where it is, the compose checksum must be that jar's.
	if home, err := os.UserHomeDir(); err == nil && sum != "" {
		cached := filepath.Join(home, ".cache/sluice/jmx-exporter-"+version, jarName)
		if b, err := os.ReadFile(cached); err == nil {
			h := sha256.Sum256(b)
			if got := hex.EncodeToString(h[:]); got != sum {
				t.Errorf("service %s checks SHA-256 %s, but %s (fetched by Maven) has %s", fetcher.Name, sum, cached, got)
			}
		} else {
			t.Logf("%s not here (make kafka-up BROKERS=3 fetches it): the checksum is compared with it where it is", cached)
		}
	}

	// Prometheus scrapes the agent's port on the kafka service.
	prom := serviceByImage(t, p, "prom/prometheus:")
	cfgPath := flagValue(prom.Command, "config.file")
	if cfgPath == "" {
		cfgPath = "/etc/prometheus/prometheus.yml"
	}
	raw, err := os.ReadFile(hostPath(prom, cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	want := net.JoinHostPort(kafka.Name, port)
	scraped := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if target == want {
					scraped = true
					if strings.HasPrefix(sc.JobName, "sluice") {
						t.Errorf("job %s scrapes the broker: the Sluice dashboards' $job lists sluice.* jobs only", sc.JobName)
					}
				}
			}
		}
	}
	if !scraped {
		t.Errorf("%s does not scrape %s, the kafka service's JMX exporter", cfgPath, want)
	}
}
