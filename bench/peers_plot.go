package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
)

// The chart of a peer comparison (--plot FILE.svg): one panel of horizontal bars per
// measure, one bar per system, each labelled with its value and its ratio to Sluice's.
// --plot-from FILE.json redraws it from a saved --json report without running anything.

// peerMeasure is one panel of the chart.
type peerMeasure struct {
	title string
	// better says which way is better, for the panel's title.
	better string
	value  func(*peerResult) float64
	format string
}

var peerMeasures = []peerMeasure{
	{"drain throughput, events/s", "higher is better", func(r *peerResult) float64 { return r.DrainEventsPerS }, "%.0f"},
	{"CPU seconds per 1,000 events (drain)", "lower is better", func(r *peerResult) float64 { return r.CPUSPer1k }, "%.4f"},
	{"peak RSS, MiB (drain)", "lower is better", func(r *peerResult) float64 { return r.RSSPeakMB }, "%.0f"},
	{"window result latency p95, ms (open model)", "lower is better", func(r *peerResult) float64 { return r.WindowLatencyP95 }, "%.0f"},
}

// Geometry of the peer chart, in SVG user units.
const (
	peerPlotLabelW = 150
	peerPlotBarH   = 22
	peerPlotGap    = 6
	peerPlotTitleH = 34
	peerPlotValueW = 170
)

var peerColors = map[string]string{peerSluice: "#1f77b4", peerKStreams: "#2ca02c", peerFlink: "#d62728"}

// writePeersPlot draws rep as SVG.
func writePeersPlot(w io.Writer, rep *peersReport) error {
	if rep == nil || len(rep.Order) == 0 {
		return errors.New("plot: the report has no systems")
	}
	panelH := peerPlotTitleH + len(rep.Order)*(peerPlotBarH+peerPlotGap) + 10
	height := 60 + len(peerMeasures)*panelH + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotW, height, plotW, height)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	title := "Sluice vs Kafka Streams vs Flink: the same job, exactly-once"
	fmt.Fprintf(&b, `<text x="20" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", escape(title))
	sub := fmt.Sprintf("results identical to the oracle: %v; %s", rep.ResultsIdentical, rep.Machine)
	fmt.Fprintf(&b, `<text x="20" y="42" fill="#555">%s</text>`+"\n", escape(sub))
	barMax := float64(plotW - 20 - peerPlotLabelW - peerPlotValueW)
	for i, m := range peerMeasures {
		top := 60 + i*panelH
		fmt.Fprintf(&b, `<text x="20" y="%d" font-weight="bold">%s <tspan font-weight="normal" fill="#555">(%s)</tspan></text>`+"\n",
			top+20, escape(m.title), escape(m.better))
		hi := 0.0
		for _, k := range rep.Order {
			if r := rep.Peers[k]; r != nil && !math.IsNaN(m.value(r)) {
				hi = math.Max(hi, m.value(r))
			}
		}
		var base float64
		if r := rep.Peers[peerSluice]; r != nil {
			base = m.value(r)
		}
		for j, k := range rep.Order {
			r := rep.Peers[k]
			if r == nil {
				continue
			}
			v := m.value(r)
			y := top + peerPlotTitleH + j*(peerPlotBarH+peerPlotGap)
			width := 0.0
			if hi > 0 && v > 0 {
				width = v / hi * barMax
			}
			color := peerColors[r.System]
			if color == "" {
				color = "#7f7f7f"
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", 20+peerPlotLabelW-8, y+peerPlotBarH-6, escape(k))
			fmt.Fprintf(&b, `<rect class="bar" data-system="%s" data-measure="%d" data-value="%g" x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n",
				escape(k), i, v, 20+peerPlotLabelW, y, width, peerPlotBarH, color)
			label := fmt.Sprintf(m.format, v)
			if base > 0 && k != peerSluice {
				label += fmt.Sprintf(" (%.2fx Sluice)", v/base)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(20+peerPlotLabelW)+width+6, y+peerPlotBarH-6, escape(label))
		}
	}
	fmt.Fprintf(&b, `<text x="20" y="%d" fill="#555">go run ./bench --peer all --backend external --brokers ... --plot FILE.svg (docs/BENCHMARKS.md)</text>`+"\n", height-10)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// savePeersPlot writes rep's chart to path.
func savePeersPlot(path string, rep *peersReport) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := writePeersPlot(f, rep); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readPeersReport reads a --json report: the last line of the file that holds a JSON
// object, so the whole output of a run can be given.
func readPeersReport(path string) (*peersReport, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--plot-from: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var rep peersReport
		if err := json.Unmarshal([]byte(l), &rep); err != nil {
			return nil, fmt.Errorf("--plot-from %s: %w", path, err)
		}
		if len(rep.Order) == 0 {
			for _, k := range []string{peerSluice, peerKStreams, peerFlink} {
				if rep.Peers[k] != nil {
					rep.Order = append(rep.Order, k)
				}
			}
			var rest []string
			for k := range rep.Peers {
				if !slices.Contains(rep.Order, k) {
					rest = append(rest, k)
				}
			}
			sort.Strings(rest)
			rep.Order = append(rep.Order, rest...)
		}
		for k, r := range rep.Peers {
			if r == nil {
				return nil, fmt.Errorf("--plot-from %s: system %q has no results", path, k)
			}
			if r.System == "" {
				r.System, _, _ = strings.Cut(k, "_")
			}
		}
		if len(rep.Order) == 0 {
			return nil, fmt.Errorf("--plot-from %s: the report has no systems", path)
		}
		return &rep, nil
	}
	return nil, fmt.Errorf("--plot-from %s: no JSON report (the last line of go run ./bench --peer ... --json)", path)
}
