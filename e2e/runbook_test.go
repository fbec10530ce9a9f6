package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
)

// runbookCommands returns the `sluice ...` lines of the sh blocks of the section titled
// title in docs/OPERATIONS.md, in order.
func runbookCommands(t *testing.T, title string) [][]string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(file)), "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	in, code := false, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "## ") {
			in = l == "## "+title
			continue
		}
		if !in {
			continue
		}
		if strings.HasPrefix(l, "```") {
			code = !code && strings.TrimPrefix(l, "```") == "sh"
			continue
		}
		if code && strings.HasPrefix(l, "sluice ") {
			out = append(out, strings.Fields(l)[1:])
		}
	}
	return out
}

// TestOperationsRunbookFixAggregation runs the commands of docs/OPERATIONS.md's "Fix a
// wrong aggregation" runbook, as written, with the sluice binary against a pipeline whose
// revenue_by_country_1m results in the runbook's range were written wrong: the dry run
// reports every window changed and writes nothing, the reprocess rewrites them to the
// oracle's values, and after the processor stops the reset's dry run and reset delete the
// aggregate stage's state, which a restart rebuilds exactly.
func TestOperationsRunbookFixAggregation(t *testing.T) {
	cmds := runbookCommands(t, "Fix a wrong aggregation")
	if len(cmds) != 4 {
		t.Fatalf("the runbook has %d sluice commands, want 4: %v", len(cmds), cmds)
	}
	p := harness.Start(t, harness.WithoutProcessor())
	pr := p.StartProcessor()
	a, _ := p.Deps.Pipeline.Aggregation("revenue_by_country_1m")
	evs := windowEvents(t, gen.Purchases, 61, 3000, windowBase, 200*time.Millisecond, time.Second)
	produced := p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	spec, _, _ := process.Spec(*a, 3)
	want := harness.Oracle(spec, oracleEvents(t, *a, produced))
	live, _ := latestResults(t, p, *a)
	injectDoubledSums(t, p, *a, live)

	bin := harness.SluiceBinary(t)
	stateDir := p.StateDir(pr.InstanceID)
	run := func(args []string, into any) {
		t.Helper()
		c := exec.CommandContext(t.Context(), bin, args...)
		c.Env = append(os.Environ(), "SLUICE_BROKERS="+strings.Join(p.Brokers, ","),
			"SLUICE_REGISTRY_URL="+p.Deps.Service.RegistryURL, "SLUICE_STATE_DIR="+stateDir)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		if err := json.Unmarshal(stdout.Bytes(), into); err != nil {
			t.Fatalf("sluice %s: output %q: %v", strings.Join(args, " "), stdout.String(), err)
		}
		t.Logf("sluice %s:\n%s", strings.Join(args, " "), stderr.String())
	}
	type summary struct {
		Windows, Changed int
		DryRun           bool `json:"dry_run"`
	}
	n0 := len(p.ReadAll(config.AggTopic(a.Name)))
	var s summary
	run(cmds[0], &s)
	if !s.DryRun || s.Windows == 0 || s.Changed != s.Windows {
		t.Errorf("runbook step 1: %+v; want a dry run with every window changed", s)
	}
	if n := len(p.ReadAll(config.AggTopic(a.Name))); n != n0 {
		t.Fatalf("the dry run wrote %d records", n-n0)
	}
	run(cmds[1], &s)
	if s.DryRun || s.Changed != s.Windows || s.Windows == 0 {
		t.Errorf("runbook step 2: %+v; want every window rewritten", s)
	}
	after := latestAfterReprocess(t, p, *a, s.Windows)
	fixed := 0
	for k, r := range after {
		if r.Headers[process.HeaderReprocessID] != "" {
			fixed++
			if got, was := r.Value["sum_amount"].(float64), live[k].Value["sum_amount"].(float64); math.Abs(got-was) > 1e-9*math.Max(1, math.Abs(was)) {
				t.Errorf("window %s: sum %v after the reprocess, the live job had %v", k, r.Value["sum_amount"], live[k].Value["sum_amount"])
			}
		}
	}
	if fixed != s.Windows {
		t.Errorf("%d windows carry the reprocess header, want %d", fixed, s.Windows)
	}

	if err := pr.Stop(); err != nil {
		t.Fatal(err)
	}
	var plan struct {
		Changelogs []string `json:"changelog_topics"`
		StateDirs  []string `json:"state_dirs"`
	}
	run(cmds[2], &plan)
	if len(plan.Changelogs) != 2 || len(plan.StateDirs) != 1 {
		t.Errorf("runbook step 3: %+v; want the two changelogs and the state dir", plan)
	}
	run(cmds[3], &plan)
	if _, err := os.Stat(filepath.Join(stateDir, process.AggregateStageName(a.Name))); !os.IsNotExist(err) {
		t.Errorf("the stage's state is still there: %v", err)
	}
	p.StartProcessorID(pr.InstanceID)
	p.WaitAllCaughtUp(time.Minute)
	rebuilt, _ := latestResults(t, p, *a)
	compareWithOracle(t, *a, asResults(rebuilt), want)
}
