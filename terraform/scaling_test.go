package terraform_test

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// TestConsumersScaleOnEveryGroupTheyRun checks that the process service scales on the
// lag of every stage group of the pipeline (clean, retry, and per aggregation repartition
// and aggregate) and the sink on its own group, and that no other service's group counts.
func TestConsumersScaleOnEveryGroupTheyRun(t *testing.T) {
	p := config.Default()
	var aggs []string
	for _, a := range p.Aggregations {
		aggs = append(aggs, a.Name)
	}
	m := loadEvalModule(t, "modules/ecs", map[string]cty.Value{"aggregations": stringsVal(aggs)})
	lg := m.local(t, "lag_groups")

	var wantProcess []string
	for _, g := range service.Groups(p) {
		if g != wire.GroupID(wire.StageSink) {
			wantProcess = append(wantProcess, g)
		}
	}
	want := map[string][]string{"process": wantProcess, "sink": {wire.GroupID(wire.StageSink)}}
	for svc, groups := range want {
		got := ctyStrings(t, lg.GetAttr(svc), "local.lag_groups."+svc)
		slices.Sort(got)
		slices.Sort(groups)
		if !slices.Equal(got, groups) {
			t.Errorf("%s scales on %v, want the lag of %v", svc, got, groups)
		}
	}

	// The default of var.aggregations is the built-in pipeline's.
	def := loadEvalModule(t, "modules/ecs", nil).ctx.Variables["var"].GetAttr("aggregations")
	if got := ctyStrings(t, def, "var.aggregations default"); !slices.Equal(got, aggs) {
		t.Errorf("default aggregations %v, want the built-in pipeline's %v", got, aggs)
	}

	// Each consumer module passes its groups; ingest scales on requests, not lag.
	src, err := os.ReadFile("modules/ecs/main.tf")
	if err != nil {
		t.Fatal(err)
	}
	mods := loadModules(t)
	for _, name := range []string{"ingest", "process", "sink"} {
		call := mods["modules/ecs"].calls[name]
		ls, ok := call.Body.Attributes["lag_scaling"]
		if name == "ingest" {
			if ok {
				t.Errorf("ingest scales on lag; it consumes nothing")
			}
			continue
		}
		if !ok {
			t.Errorf("module %q has no lag_scaling", name)
			continue
		}
		if text := string(ls.Expr.Range().SliceBytes(src)); !regexp.MustCompile(`\bgroups\s*=\s*local\.lag_groups\.` + name + `\s`).MatchString(text) {
			t.Errorf("module %q: lag_scaling.groups must be local.lag_groups.%s:\n%s", name, name, text)
		}
	}
}
