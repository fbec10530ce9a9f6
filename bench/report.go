package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/goccy/go-json"
)

// Output is everything one invocation measured; --json prints it as the last line.
// Its top-level fields are the run (or, in step mode, the knee step: the highest
// sustained one, else the first).
type Output struct {
	Result
	// Bare is the bare franz-go loop at the same rate on the same broker (--bare).
	Bare *BareResult `json:"bare,omitempty"`
	// E2EP95OverBare and E2EP99OverBare are our e2e percentiles divided by the bare
	// loop's: the pipeline's overhead as a ratio to the floor.
	E2EP95OverBare float64 `json:"e2e_p95_over_bare,omitempty"`
	E2EP99OverBare float64 `json:"e2e_p99_over_bare,omitempty"`
	// Steps are every step of a step run, KneeRate the offered rate of the highest
	// sustained step (0: none was).
	Steps    []Result `json:"steps,omitempty"`
	KneeRate float64  `json:"knee_rate,omitempty"`
	// SLOms is the e2e p95 a step had to stay under.
	SLOms float64 `json:"slo_ms"`

	timelineParts []Second // every run's seconds, one after the other, for the plot
}

// withBare fills the bare loop's figures and the ratios.
func (o *Output) withBare(b BareResult) {
	o.Bare = &b
	if b.P95 > 0 && o.E2EP95 >= 0 {
		o.E2EP95OverBare = round3(o.E2EP95 / b.P95)
	}
	if b.P99 > 0 && o.E2EP99 >= 0 {
		o.E2EP99OverBare = round3(o.E2EP99 / b.P99)
	}
}

// writeJSON prints o as one line.
func writeJSON(w io.Writer, o Output) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeMarkdown prints o as Markdown tables.
func writeMarkdown(w io.Writer, o Output) error {
	var b strings.Builder
	b.WriteString("| run | mode | offered ev/s | achieved ev/s | errors | HTTP p50 / p95 / p99 ms | e2e p50 / p95 / p99 / max ms | clean / accepted | CPU s | CPU us/event | sustained |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---|---|---:|---:|---|\n")
	rows := o.Steps
	if len(rows) == 0 {
		rows = []Result{o.Result}
	}
	for i, r := range rows {
		name := "pipeline"
		if r.Stages == "clean-only" {
			name = "ingest->clean"
		}
		if len(o.Steps) > 0 {
			name = fmt.Sprintf("step %d", i+1)
			if o.KneeRate > 0 && r.OfferedRate == o.KneeRate {
				name += " (knee)"
			}
		}
		mode := r.Mode
		if r.Mode != ModeSingle {
			mode = fmt.Sprintf("%s x%d", r.Mode, r.BatchSize)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %d | %s / %s / %s | %s / %s / %s / %s | %d / %d | %.2f | %.1f | %v |\n",
			name, mode, r.OfferedRate, r.AchievedRate, r.Errors,
			num(r.HTTPP50), num(r.HTTPP95), num(r.HTTPP99),
			num(r.E2EP50), num(r.E2EP95), num(r.E2EP99), num(r.E2EMax),
			r.Clean, r.Accepted, r.ServerCPUSeconds, r.CPUMicrosPerEvent, r.Sustained)
	}
	if bb := o.Bare; bb != nil {
		fmt.Fprintf(&b, "| bare franz-go | produce->consume | %.0f | %.0f | %d | - | %s / %s / %s / %s | %d / %d | - | - | - |\n",
			bb.OfferedRate, bb.AchievedRate, bb.Errors, num(bb.P50), num(bb.P95), num(bb.P99), num(bb.Max), bb.Consumed, bb.Produced)
		fmt.Fprintf(&b, "\ne2e p95 / bare p95 = %.1fx, e2e p99 / bare p99 = %.1fx\n", o.E2EP95OverBare, o.E2EP99OverBare)
	}
	if len(o.Steps) > 0 {
		if o.KneeRate > 0 {
			fmt.Fprintf(&b, "\nknee: %.0f events/s (highest step with achieved >= 95%% of offered, errors < 1%%, e2e p95 < %.0f ms)\n", o.KneeRate, o.SLOms)
		} else {
			fmt.Fprintf(&b, "\nknee: none of the steps was sustained (e2e p95 < %.0f ms)\n", o.SLOms)
		}
	}
	if r := o.Result; r.FirstError != "" {
		fmt.Fprintf(&b, "\nfirst error: %s\n", r.FirstError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(f float64) string {
	if f < 0 {
		return "-"
	}
	if f >= 100 {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}
