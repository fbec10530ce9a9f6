package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func samplePeersReport() *peersReport {
	return &peersReport{
		Order:            []string{peerSluice, peerKStreams, peerFlink},
		ResultsIdentical: true,
		Machine:          "test machine",
		Peers: map[string]*peerResult{
			peerSluice:   {System: peerSluice, DrainEventsPerS: 20000, CPUSPer1k: 0.04, RSSPeakMB: 200, WindowLatencyP95: 100},
			peerKStreams: {System: peerKStreams, DrainEventsPerS: 10000, CPUSPer1k: 0.08, RSSPeakMB: 800, WindowLatencyP95: 250},
			peerFlink:    {System: peerFlink, DrainEventsPerS: 5000, CPUSPer1k: 0.02, RSSPeakMB: 1200, WindowLatencyP95: 2000},
		},
	}
}

// bars parses the chart and returns each bar's width by measure and system.
func bars(t *testing.T, svg []byte) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "rect" {
			continue
		}
		attr := map[string]string{}
		for _, a := range se.Attr {
			attr[a.Name.Local] = a.Value
		}
		if attr["class"] != "bar" {
			continue
		}
		w, err := strconv.ParseFloat(attr["width"], 64)
		if err != nil {
			t.Fatalf("bar width %q: %v", attr["width"], err)
		}
		out[attr["data-measure"]+"/"+attr["data-system"]] = w
	}
	return out
}

func TestPeersPlotBarsProportional(t *testing.T) {
	var buf bytes.Buffer
	if err := writePeersPlot(&buf, samplePeersReport()); err != nil {
		t.Fatal(err)
	}
	b := bars(t, buf.Bytes())
	if len(b) != len(peerMeasures)*3 {
		t.Fatalf("%d bars, want %d: %v", len(b), len(peerMeasures)*3, b)
	}
	rep := samplePeersReport()
	for i, m := range peerMeasures {
		mi := strconv.Itoa(i)
		for _, k := range rep.Order {
			// Each bar's width over the Sluice bar's is the value's ratio.
			want := m.value(rep.Peers[k]) / m.value(rep.Peers[peerSluice])
			got := b[mi+"/"+k] / b[mi+"/"+peerSluice]
			if math.Abs(got-want) > 0.01 {
				t.Errorf("%s, %s: bar ratio %.3f, want %.3f", m.title, k, got, want)
			}
		}
	}
	for _, want := range []string{"0.50x Sluice", "4.00x Sluice", "20.00x Sluice", "results identical to the oracle: true"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the chart lacks %q", want)
		}
	}
}

func TestPeersPlotFromJSON(t *testing.T) {
	dir := t.TempDir()
	js, err := json.Marshal(samplePeersReport())
	if err != nil {
		t.Fatal(err)
	}
	// A whole --json run's output: progress lines, then the report as the last line.
	in := filepath.Join(dir, "peers.out")
	if err := os.WriteFile(in, append([]byte("peers: draining\n"), append(js, '\n')...), 0o600); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(dir, "peers.svg")
	var out, errw bytes.Buffer
	if err := run(t.Context(), []string{"--peer", "all", "--plot-from", in, "--plot", svg}, &out, &errw); err != nil {
		t.Fatalf("--plot-from: %v (%s)", err, errw.String())
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(bars(t, b)); n != len(peerMeasures)*3 {
		t.Fatalf("%d bars from the saved report", n)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--peer", "all", "--plot-from", in}, "--plot-from needs --plot"},
		{[]string{"--peer", "all", "--plot-from", filepath.Join(dir, "missing.json"), "--plot", svg}, "no such file"},
		{[]string{"--peer", "all", "--plot-from", svg, "--plot", filepath.Join(dir, "x.svg")}, "no JSON report"},
	} {
		err := run(t.Context(), c.args, &out, &errw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}
