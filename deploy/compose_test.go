package deploy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

// Files under test, relative to the repository root.
const (
	composeFile   = "docker-compose.yml"
	envExample    = "deploy/compose.env.example"
	promtoolHint  = "install promtool with `apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus` (`make deps` does)"
	promtoolLimit = time.Minute
)

// sluiceCommands maps each subcommand a compose service of the Sluice image may run to
// whether it is long-running (a server with /healthz) rather than one-shot.
func sluiceCommands() map[string]bool {
	return map[string]bool{"ingest": true, "process": true, "sink": true, "generate": false, "topics": false}
}

// repoRoot is the repository root: the parent of this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// loadCompose loads docker-compose.yml the way `docker compose` does, with every profile
// active and env as the only variables (no OS environment, no .env file), so that the
// result depends on the file alone.
func loadCompose(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	if profiles == nil {
		profiles = []string{"*"}
	}
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, composeFile)},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(envList),
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cli.ProjectFromOptions(t.Context(), opts)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

// isSluice reports whether s runs the image built from this repository's Dockerfile.
func isSluice(s types.ServiceConfig) bool { return s.Build != nil }

// oneShot reports whether s runs to completion: a Sluice service running a one-shot
// subcommand, or another image's service that never restarts (restart: "no").
func oneShot(s types.ServiceConfig) bool {
	if !isSluice(s) {
		return s.Restart == types.RestartPolicyNo
	}
	return len(s.Command) > 0 && !sluiceCommands()[s.Command[0]]
}

// env returns the value of the environment variable name of s ("" when unset).
func env(s types.ServiceConfig, name string) string {
	if v, ok := s.Environment[name]; ok && v != nil {
		return *v
	}
	return ""
}

// httpPort is the port of a Sluice service's SLUICE_HTTP_ADDR (8080 when unset).
func httpPort(t *testing.T, s types.ServiceConfig) string {
	t.Helper()
	addr := env(s, "SLUICE_HTTP_ADDR")
	if addr == "" {
		return "8080"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("service %s: SLUICE_HTTP_ADDR %q: %v", s.Name, addr, err)
	}
	return port
}

// hostPath maps a path inside the container of s to the host file or directory that a
// bind mount puts there ("" when none does).
func hostPath(s types.ServiceConfig, containerPath string) string {
	best, bestLen := "", -1
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		rel, err := filepath.Rel(v.Target, containerPath)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if len(v.Target) > bestLen {
			best, bestLen = filepath.Join(v.Source, rel), len(v.Target)
		}
	}
	return best
}

// flagValue returns the value of --name=value in args ("" when absent).
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// inRepo fails the test unless p exists and lies inside the repository.
func inRepo(t *testing.T, root, what, p string) {
	t.Helper()
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		t.Errorf("%s: %s is outside the repository", what, p)
		return
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func TestComposeLoads(t *testing.T) {
	want := []string{"alertmanager", "generator", "grafana", "ingest", "jmx-exporter", "kafka", "process", "prometheus", "schema-registry", "sink", "topics"}
	tests := []struct {
		name     string
		profiles []string
		want     []string
		disabled []string
	}{
		{name: "all profiles", profiles: []string{"*"}, want: want},
		{name: "default profile", profiles: []string{}, want: slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == "generator" }), disabled: []string{"generator"}},
		{name: "generate profile", profiles: []string{"generate"}, want: want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadCompose(t, nil, tt.profiles...)
			if p.Name != "sluice" {
				t.Errorf("project name = %q, want sluice", p.Name)
			}
			if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, tt.want) {
				t.Errorf("services = %v, want %v", got, tt.want)
			}
			if got := slices.Sorted(maps.Keys(p.DisabledServices)); !slices.Equal(got, tt.disabled) && len(got)+len(tt.disabled) > 0 {
				t.Errorf("disabled services = %v, want %v", got, tt.disabled)
			}
		})
	}
}

func TestComposeReferencedFilesExist(t *testing.T) {
	root := repoRoot(t)
	p := loadCompose(t, nil)
	binds := 0
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				binds++
				inRepo(t, root, "service "+s.Name+" bind mount "+v.Target, v.Source)
				if !v.ReadOnly {
					t.Errorf("service %s: bind mount %s -> %s is writable; mount repository files :ro", s.Name, v.Source, v.Target)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("service %s: volume %q is not declared under volumes:", s.Name, v.Source)
				}
			}
		}
		for _, f := range s.EnvFiles {
			if f.Required {
				inRepo(t, root, "service "+s.Name+" env_file", f.Path)
			}
		}
		for _, sec := range s.Secrets {
			if _, ok := p.Secrets[sec.Source]; !ok {
				t.Errorf("service %s: secret %q is not declared under secrets:", s.Name, sec.Source)
			}
		}
		for _, c := range s.Configs {
			if _, ok := p.Configs[c.Source]; !ok {
				t.Errorf("service %s: config %q is not declared under configs:", s.Name, c.Source)
			}
		}
		if s.Build != nil {
			inRepo(t, root, "service "+s.Name+" build context", s.Build.Context)
			inRepo(t, root, "service "+s.Name+" Dockerfile", filepath.Join(s.Build.Context, s.Build.Dockerfile))
		}
	}
	if binds == 0 {
		t.Error("no bind mounts at all: the monitoring files are not mounted")
	}
	for name, sec := range p.Secrets {
		if sec.File == "" {
			t.Errorf("secret %s: not a file secret", name)
			continue
		}
		inRepo(t, root, "secret "+name, sec.File)
	}
	for name, c := range p.Configs {
		if c.File != "" {
			inRepo(t, root, "config "+name, c.File)
		}
	}
}

func TestComposeSluiceServices(t *testing.T) {
	p := loadCompose(t, nil)
	image := ""
	n := 0
	for _, s := range p.Services {
		if !isSluice(s) {
			continue
		}
		n++
		t.Run(s.Name, func(t *testing.T) {
			if len(s.Command) == 0 {
				t.Fatalf("no command: the image's default only prints the usage")
			}
			if _, ok := sluiceCommands()[s.Command[0]]; !ok {
				t.Errorf("command %q: want one of %v", s.Command, slices.Sorted(maps.Keys(sluiceCommands())))
			}
			if len(s.Entrypoint) > 0 {
				t.Errorf("entrypoint %q overrides the image's /sluice", s.Entrypoint)
			}
			if image == "" {
				image = s.Image
			} else if s.Image != image {
				t.Errorf("image %q, other Sluice services use %q", s.Image, image)
			}
			if s.Build.Dockerfile != "Dockerfile" {
				t.Errorf("build.dockerfile = %q, want Dockerfile", s.Build.Dockerfile)
			}
			for _, h := range strings.Split(env(s, "SLUICE_BROKERS"), ",") {
				host, _, err := net.SplitHostPort(h)
				if err != nil {
					t.Errorf("SLUICE_BROKERS %q: %v", h, err)
				} else if _, ok := p.Services[host]; !ok {
					t.Errorf("SLUICE_BROKERS names %q, which is no service", host)
				}
			}
			u, err := url.Parse(env(s, "SLUICE_REGISTRY_URL"))
			if err != nil || u.Host == "" {
				t.Errorf("SLUICE_REGISTRY_URL %q is not a URL", env(s, "SLUICE_REGISTRY_URL"))
			} else if _, ok := p.Services[u.Hostname()]; !ok {
				t.Errorf("SLUICE_REGISTRY_URL names %q, which is no service", u.Hostname())
			}
			switch s.Command[0] {
			case "topics":
				if !slices.Equal(s.Command, []string{"topics", "create"}) {
					t.Errorf("command %q, want [topics create]", s.Command)
				}
			case "generate":
				u, err := url.Parse(flagValue(s.Command, "url"))
				if err != nil || u.Host == "" {
					t.Fatalf("generate needs --url=http://<ingest service>:<port> (command %q)", s.Command)
				}
				target, ok := p.Services[u.Hostname()]
				if !ok || !isSluice(target) || target.Command[0] != "ingest" {
					t.Errorf("--url %s does not name the ingest service", u)
				} else if u.Port() != httpPort(t, target) {
					t.Errorf("--url %s: port is not ingest's %s", u, httpPort(t, target))
				}
				if !slices.Contains(s.Profiles, "generate") {
					t.Errorf("profiles = %v, want the generator in profile generate", s.Profiles)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no service builds the Sluice image")
	}
}

func TestComposeHealthchecks(t *testing.T) {
	p := loadCompose(t, nil)
	for _, s := range p.Services {
		t.Run(s.Name, func(t *testing.T) {
			hc := s.HealthCheck
			healthy := hc != nil && !hc.Disable && len(hc.Test) > 1 && (hc.Test[0] == "CMD" || hc.Test[0] == "CMD-SHELL")
			if oneShot(s) {
				// The image's HEALTHCHECK would probe a port nothing listens on.
				if hc == nil || !hc.Disable {
					t.Errorf("one-shot service: disable the image's health check")
				}
				if s.Restart != types.RestartPolicyNo && s.Restart != types.RestartPolicyOnFailure && !strings.HasPrefix(s.Restart, "on-failure:") {
					t.Errorf("restart = %q: a one-shot service must not restart after success", s.Restart)
				}
			} else {
				if !healthy {
					t.Errorf("long-running service without a health check (healthcheck = %+v)", hc)
				}
				switch s.Restart {
				case types.RestartPolicyAlways, types.RestartPolicyUnlessStopped, types.RestartPolicyOnFailure:
				default:
					t.Errorf("restart = %q, want unless-stopped, always or on-failure", s.Restart)
				}
				if isSluice(s) && healthy && !slices.Equal(hc.Test[:3], []string{"CMD", "/sluice", "health"}) {
					t.Errorf("health check %q, want [CMD /sluice health ...] (the image has no curl)", hc.Test)
				}
			}
			for name, dep := range s.DependsOn {
				target, ok := p.Services[name]
				if !ok {
					t.Errorf("depends_on %s: no such service", name)
					continue
				}
				switch dep.Condition {
				case types.ServiceConditionHealthy:
					if target.HealthCheck == nil || target.HealthCheck.Disable {
						t.Errorf("depends_on %s: service_healthy, but %s has no health check", name, name)
					}
				case types.ServiceConditionCompletedSuccessfully:
					if !oneShot(target) {
						t.Errorf("depends_on %s: service_completed_successfully, but %s does not exit", name, name)
					}
				default:
					t.Errorf("depends_on %s: condition %q; wait for service_healthy or service_completed_successfully", name, dep.Condition)
				}
			}
		})
	}
}

// promConfig is the part of a Prometheus configuration these tests read.
type promConfig struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// serviceByImage returns the one service whose image starts with prefix.
func serviceByImage(t *testing.T, p *types.Project, prefix string) types.ServiceConfig {
	t.Helper()
	var found []types.ServiceConfig
	for _, s := range p.Services {
		if strings.HasPrefix(s.Image, prefix) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one service with image %s*, found %d", prefix, len(found))
	}
	return found[0]
}

func TestComposePrometheusScrapesEveryService(t *testing.T) {
	p := loadCompose(t, nil)
	prom := serviceByImage(t, p, "prom/prometheus:")
	cfgPath := flagValue(prom.Command, "config.file")
	if cfgPath == "" {
		cfgPath = "/etc/prometheus/prometheus.yml"
	}
	hostCfg := hostPath(prom, cfgPath)
	if hostCfg == "" {
		t.Fatalf("no bind mount provides %s", cfgPath)
	}
	raw, err := os.ReadFile(hostCfg)
	if err != nil {
		t.Fatal(err)
	}
	var cfg promConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", hostCfg, err)
	}

	jobOf := map[string]string{} // target -> job
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				jobOf[target] = sc.JobName
				host, _, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
					continue
				}
				if _, ok := p.Services[host]; !ok && host != "localhost" {
					t.Errorf("job %s: target %q names no compose service", sc.JobName, target)
				}
			}
		}
	}
	for _, s := range p.Services {
		if !isSluice(s) || oneShot(s) {
			continue
		}
		target := s.Name + ":" + httpPort(t, s)
		job, ok := jobOf[target]
		switch {
		case !ok:
			t.Errorf("service %s: %s does not scrape %s", s.Name, hostCfg, target)
		case !strings.HasPrefix(job, "sluice"):
			t.Errorf("service %s: scraped by job %q; the dashboards list jobs matching sluice.*", s.Name, job)
		}
	}
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, st := range am.StaticConfigs {
			for _, target := range st.Targets {
				host, _, _ := net.SplitHostPort(target)
				if _, ok := p.Services[host]; !ok {
					t.Errorf("alertmanager target %q names no compose service", target)
				}
			}
		}
	}
	if len(cfg.RuleFiles) == 0 {
		t.Error("no rule_files: the alert rules are not loaded")
	}

	// Rebuild the container's view of the configuration directory from the bind mounts
	// and let promtool check it, rule files included.
	cfgDir := path.Dir(cfgPath)
	tmp := t.TempDir()
	copyMounted := func(containerPath string) {
		src := hostPath(prom, containerPath)
		if src == "" {
			t.Errorf("%s: no bind mount provides it", containerPath)
			return
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Errorf("%s (%s): %v", containerPath, src, err)
			return
		}
		dst := filepath.Join(tmp, filepath.FromSlash(strings.TrimPrefix(containerPath, cfgDir+"/")))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyMounted(cfgPath)
	for _, rf := range cfg.RuleFiles {
		if !path.IsAbs(rf) {
			rf = path.Join(cfgDir, rf)
		}
		if !strings.HasPrefix(rf, cfgDir+"/") || strings.ContainsAny(rf, "*?[") {
			t.Errorf("rule file %s: keep rule files as plain names beside %s", rf, cfgPath)
			continue
		}
		copyMounted(rf)
	}
	if t.Failed() {
		return
	}
	out := runPromtool(t, tmp, "check", "config", path.Base(cfgPath))
	t.Logf("promtool check config:\n%s", out)
}

// runPromtool runs promtool in dir and fails the test if it fails or is missing: this
// check must never pass by being skipped.
func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH (%v): %s", err, promtoolHint)
	}
	ctx, cancel := context.WithTimeout(t.Context(), promtoolLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestComposeGrafanaProvisioning(t *testing.T) {
	p := loadCompose(t, nil)
	graf := serviceByImage(t, p, "grafana/grafana:")
	provDir := env(graf, "GF_PATHS_PROVISIONING")
	if provDir == "" {
		provDir = "/etc/grafana/provisioning"
	}
	hostProv := hostPath(graf, provDir)
	if hostProv == "" {
		t.Fatalf("no bind mount provides %s", provDir)
	}
	ymls := func(dir string) []string {
		var files []string
		for _, pat := range []string{"*.yml", "*.yaml"} {
			m, _ := filepath.Glob(filepath.Join(hostProv, dir, pat))
			files = append(files, m...)
		}
		if len(files) == 0 {
			t.Errorf("%s: no provisioning files in %s", provDir+"/"+dir, filepath.Join(hostProv, dir))
		}
		return files
	}

	for _, f := range ymls("datasources") {
		var ds struct {
			Datasources []struct {
				Name, Type, URL string
			} `yaml:"datasources"`
		}
		readYAML(t, f, &ds)
		for _, d := range ds.Datasources {
			u, err := url.Parse(d.URL)
			if err != nil || u.Host == "" {
				t.Errorf("%s: datasource %s: url %q", f, d.Name, d.URL)
				continue
			}
			target, ok := p.Services[u.Hostname()]
			if !ok {
				t.Errorf("%s: datasource %s: %s names no compose service", f, d.Name, d.URL)
				continue
			}
			if d.Type == "prometheus" && !strings.HasPrefix(target.Image, "prom/prometheus:") {
				t.Errorf("%s: datasource %s points at %s, which is not Prometheus", f, d.Name, u.Hostname())
			}
		}
	}

	for _, f := range ymls("dashboards") {
		var dp struct {
			Providers []struct {
				Name    string `yaml:"name"`
				Type    string `yaml:"type"`
				Options struct {
					Path string `yaml:"path"`
				} `yaml:"options"`
			} `yaml:"providers"`
		}
		readYAML(t, f, &dp)
		if len(dp.Providers) == 0 {
			t.Errorf("%s: no dashboard providers", f)
		}
		for _, pr := range dp.Providers {
			if pr.Type != "file" {
				continue
			}
			host := hostPath(graf, pr.Options.Path)
			if host == "" {
				t.Errorf("%s: provider %s reads %s, which no bind mount provides", f, pr.Name, pr.Options.Path)
				continue
			}
			dash, _ := filepath.Glob(filepath.Join(host, "*.json"))
			if len(dash) == 0 {
				t.Errorf("%s: provider %s: no dashboards (*.json) in %s", f, pr.Name, host)
			}
		}
	}
}

// readYAML decodes the YAML file name into v, failing the test on error.
func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// varRef finds variable references in a compose file: $$ escapes, ${NAME<op>...} and
// bare $NAME.
var varRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?|\$([A-Za-z_][A-Za-z0-9_]*)`)

func TestComposeVariablesHaveDefaults(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(root, envExample))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range varRef.FindAllStringSubmatch(line, -1) {
			name, op := m[1], m[2]
			switch {
			case m[0] == "$$":
				continue
			case m[3] != "":
				t.Errorf("%s:%d: $%s without braces has no default; write ${%s:-default}", composeFile, i+1, m[3], m[3])
				continue
			case op != ":-" && op != "-":
				t.Errorf("%s:%d: ${%s} has no default (%q); the file must work without a .env", composeFile, i+1, name, op)
			}
			if !seen[name] && !regexp.MustCompile(`(?m)^#?\s*`+name+`=`).Match(example) {
				t.Errorf("%s:%d: ${%s} is not listed in %s", composeFile, i+1, name, envExample)
			}
			seen[name] = true
		}
	}
	if len(seen) == 0 {
		t.Error("no variables found: the parser is broken")
	}
}

func TestComposeWarehouseFromEnv(t *testing.T) {
	key := filepath.Join(t.TempDir(), "rsa_key.p8")
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		env        map[string]string
		want       map[string]string // sink environment
		wantSecret string            // snowflake_private_key file, relative to the root if not absolute
	}{
		{
			name:       "duckdb by default",
			want:       map[string]string{"SLUICE_WAREHOUSE": "duckdb", "SLUICE_SNOWFLAKE_ACCOUNT": ""},
			wantSecret: "deploy/snowflake/no-private-key.txt",
		},
		{
			name: "snowflake by env",
			env: map[string]string{
				"SLUICE_WAREHOUSE": "snowflake", "SLUICE_SNOWFLAKE_ACCOUNT": "acme-eu1", "SLUICE_SNOWFLAKE_USER": "SLUICE",
				"SLUICE_SNOWFLAKE_PRIVATE_KEY_FILE": "/run/secrets/snowflake_private_key", "SNOWFLAKE_PRIVATE_KEY_PATH": key,
				"SLUICE_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "pass phrase",
			},
			want: map[string]string{
				"SLUICE_WAREHOUSE": "snowflake", "SLUICE_SNOWFLAKE_ACCOUNT": "acme-eu1", "SLUICE_SNOWFLAKE_USER": "SLUICE",
				"SLUICE_SNOWFLAKE_PRIVATE_KEY_FILE":       "/run/secrets/snowflake_private_key",
				"SLUICE_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "pass phrase",
			},
			wantSecret: key,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadCompose(t, tt.env)
			sink, ok := p.Services["sink"]
			if !ok || !isSluice(sink) || sink.Command[0] != "sink" {
				t.Fatal("no sink service running `sluice sink`")
			}
			for k, v := range tt.want {
				if got := env(sink, k); got != v {
					t.Errorf("sink %s = %q, want %q", k, got, v)
				}
			}
			wantSecret := tt.wantSecret
			if !filepath.IsAbs(wantSecret) {
				wantSecret = filepath.Join(repoRoot(t), wantSecret)
			}
			if got := p.Secrets["snowflake_private_key"].File; got != wantSecret {
				t.Errorf("secret snowflake_private_key = %q, want %q", got, wantSecret)
			}
			// `docker compose exec sink /sluice query` inherits the environment; with
			// SLUICE_DUCKDB_PATH set it would open the sink's locked file.
			if _, ok := sink.Environment["SLUICE_DUCKDB_PATH"]; ok {
				t.Error("sink sets SLUICE_DUCKDB_PATH; pass --duckdb-path in its command instead")
			}
			// The DuckDB file must live on a named volume, or it is lost with the container.
			dbPath := flagValue(sink.Command, "duckdb-path")
			if dbPath == "" {
				t.Fatalf("sink command %q has no --duckdb-path=FILE", sink.Command)
			}
			onVolume := false
			for _, v := range sink.Volumes {
				if v.Type == types.VolumeTypeVolume && strings.HasPrefix(dbPath, strings.TrimSuffix(v.Target, "/")+"/") {
					onVolume = true
				}
			}
			if !onVolume {
				t.Errorf("SLUICE_DUCKDB_PATH %s is not on a named volume of the sink", dbPath)
			}
		})
	}
}

func TestComposeKafka(t *testing.T) {
	p := loadCompose(t, nil)
	kafka := serviceByImage(t, p, "apache/kafka:")
	if !strings.HasPrefix(kafka.Image, "apache/kafka:4.") {
		t.Errorf("image %s, want Kafka 4.x", kafka.Image)
	}
	roles := strings.Split(env(kafka, "KAFKA_PROCESS_ROLES"), ",")
	if !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
		t.Errorf("KAFKA_PROCESS_ROLES = %q, want broker,controller (KRaft combined mode)", env(kafka, "KAFKA_PROCESS_ROLES"))
	}
	for _, k := range []string{
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS",
	} {
		if got := env(kafka, k); got != "1" {
			t.Errorf("%s = %q, want 1 on a single node", k, got)
		}
	}
	if id, err := base64.RawURLEncoding.DecodeString(env(kafka, "CLUSTER_ID")); err != nil || len(id) != 16 {
		t.Errorf("CLUSTER_ID %q is not a base64 (URL, unpadded) 16-byte id", env(kafka, "CLUSTER_ID"))
	}
	if !strings.Contains(env(kafka, "KAFKA_ADVERTISED_LISTENERS"), "://"+kafka.Name+":9092") {
		t.Errorf("KAFKA_ADVERTISED_LISTENERS %q does not advertise %s:9092 to the other services", env(kafka, "KAFKA_ADVERTISED_LISTENERS"), kafka.Name)
	}
	for _, s := range p.Services {
		if strings.Contains(s.Image, "zookeeper") {
			t.Errorf("service %s runs ZooKeeper; KRaft needs none", s.Name)
		}
	}
	reg := serviceByImage(t, p, "confluentinc/cp-schema-registry:")
	if dep, ok := reg.DependsOn[kafka.Name]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("schema registry must wait for %s to be healthy (depends_on = %v)", kafka.Name, reg.DependsOn)
	}
	if got := env(reg, "SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR"); got != "1" {
		t.Errorf("SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR = %q, want 1", got)
	}
}

func TestComposeImagesPinned(t *testing.T) {
	p := loadCompose(t, nil)
	for _, s := range p.Services {
		if isSluice(s) {
			continue // built here
		}
		i := strings.LastIndex(s.Image, ":")
		if i < 0 || strings.Contains(s.Image[i:], "/") {
			t.Errorf("service %s: image %q has no tag", s.Name, s.Image)
			continue
		}
		if tag := s.Image[i+1:]; tag == "latest" || !regexp.MustCompile(`\d`).MatchString(tag) {
			t.Errorf("service %s: image %q is not pinned to a version", s.Name, s.Image)
		}
	}
}
