package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/wire"
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
	n0 := len(p.ReadAll(wire.AggTopic(a.Name)))
	var s summary
	run(cmds[0], &s)
	if !s.DryRun || s.Windows == 0 || s.Changed != s.Windows {
		t.Errorf("runbook step 1: %+v; want a dry run with every window changed", s)
	}
	if n := len(p.ReadAll(wire.AggTopic(a.Name))); n != n0 {
		t.Fatalf("the dry run wrote %d records", n-n0)
	}
	run(cmds[1], &s)
	if s.DryRun || s.Changed != s.Windows || s.Windows == 0 {
		t.Errorf("runbook step 2: %+v; want every window rewritten", s)
	}
	after := latestAfterReprocess(t, p, *a, s.Windows)
	fixed := 0
	for k, r := range after {
		if r.Headers[wire.HeaderReprocessID] != "" {
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
	if _, err := os.Stat(filepath.Join(stateDir, wire.StageAggregate(a.Name))); !os.IsNotExist(err) {
		t.Errorf("the stage's state is still there: %v", err)
	}
	p.StartProcessorID(pr.InstanceID)
	p.WaitAllCaughtUp(time.Minute)
	rebuilt, _ := latestResults(t, p, *a)
	compareWithOracle(t, *a, asResults(rebuilt), want)
}

// TestReprocessCommandRefusals runs `sluice reprocess` and `sluice reset` (the binary)
// where each must refuse, and checks the exit status and that the message says why:
// an unknown aggregation (listing the pipeline's), --from not before --to, a range the
// live job has not closed (no watermark yet, then naming its watermark), a range whose
// input is no longer retained (naming the topic and the earliest retained time), and a
// reset of a stage whose group has a live member.
func TestReprocessCommandRefusals(t *testing.T) {
	p := harness.Start(t)
	bin := harness.SluiceBinary(t)
	refuse := func(args []string, want ...string) string {
		t.Helper()
		c := exec.CommandContext(t.Context(), bin, args...)
		c.Env = append(os.Environ(), "SLUICE_BROKERS="+strings.Join(p.Brokers, ","),
			"SLUICE_REGISTRY_URL="+p.Deps.Service.RegistryURL, "SLUICE_STATE_DIR="+t.TempDir())
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("sluice %s: %v (stdout %q), want exit status 1", strings.Join(args, " "), err, stdout.String())
		}
		for _, w := range want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("sluice %s: %q lacks %q", strings.Join(args, " "), stderr.String(), w)
			}
		}
		t.Logf("sluice %s: %s", strings.Join(args, " "), strings.TrimSpace(stderr.String()))
		return stderr.String()
	}
	agg := "revenue_by_country_1m"
	rfc := func(d time.Duration) string { return windowBase.Add(d).Format(time.RFC3339) }
	refuse([]string{"reprocess", "--aggregation", "nope", "--from", rfc(2 * time.Minute), "--to", rfc(5 * time.Minute)},
		`sluice: reprocess: unknown aggregation "nope" (the pipeline has: `, agg)
	refuse([]string{"reprocess", "--aggregation", agg, "--from", rfc(5 * time.Minute), "--to", rfc(5 * time.Minute)},
		"--from 2026-11-01T10:05:00Z must be before --to 2026-11-01T10:05:00Z")
	refuse([]string{"reprocess", "--aggregation", agg, "--from", rfc(5 * time.Minute), "--to", rfc(2 * time.Minute)},
		"must be before --to")
	refuse([]string{"reprocess", "--aggregation", agg, "--from", rfc(2 * time.Minute), "--to", rfc(5 * time.Minute), "--dry-run"},
		"the range overlaps windows the live job has not closed yet: its watermark is none yet (no window has closed)")

	evs := windowEvents(t, gen.Purchases, 65, 1500, windowBase, 400*time.Millisecond, time.Second) // 10 minutes
	p.ProduceEvents(gen.Purchases, evs)
	p.WaitAllCaughtUp(time.Minute)
	refuse([]string{"reprocess", "--aggregation", agg, "--from", rfc(2 * time.Minute), "--to", rfc(30 * time.Minute), "--dry-run"},
		"its watermark is 2026-11-01T10:09:", "the last window before --to closes at 2026-11-01T10:30:05Z")
	refuse([]string{"reset", "--stage", wire.StageAggregate(agg)},
		"reset: stage "+wire.StageAggregate(agg)+" is running", "1 live member(s)", "stop every process that runs it first")

	clean := wire.CleanTopic(gen.Purchases)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: clean, Partition: 0, At: 200})
	if _, err := p.Admin().DeleteRecords(t.Context(), offs); err != nil {
		t.Fatal(err)
	}
	msg := refuse([]string{"reprocess", "--aggregation", agg, "--from", rfc(0), "--to", rfc(5 * time.Minute), "--dry-run"},
		"the input is no longer retained: "+clean+" holds records only from 2026-11-01T10:", "partition 0 from", "choose --from at or after ")
	// The --from it names is accepted (a second earlier is not).
	m := regexp.MustCompile(`choose --from at or after (\S+)$`).FindStringSubmatch(strings.TrimSpace(msg))
	if m == nil {
		t.Fatalf("no --from named in %q", msg)
	}
	first, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	refuse([]string{"reprocess", "--aggregation", agg, "--from", first.Add(-time.Second).Format(time.RFC3339), "--to", rfc(9 * time.Minute), "--dry-run"},
		"no longer retained")
	c := exec.CommandContext(t.Context(), bin, "reprocess", "--aggregation", agg, "--from", m[1], "--to", rfc(9*time.Minute), "--dry-run")
	c.Env = append(os.Environ(), "SLUICE_BROKERS="+strings.Join(p.Brokers, ","), "SLUICE_REGISTRY_URL="+p.Deps.Service.RegistryURL)
	if out, err := c.CombinedOutput(); err != nil {
		t.Errorf("reprocess from the named %s: %v\n%s", m[1], err, out)
	}
}
