// Command diagram draws docs/architecture.svg, the architecture picture of the README,
// from the layout below: `go run ./docs/diagram` (from the repository root) rewrites it,
// and its test fails when the committed file differs from what this program draws.
// No external renderer is needed; the drawing is plain SVG with fixed coordinates.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	out := flag.String("o", "docs/architecture.svg", "the SVG `file` to write")
	flag.Parse()
	if err := os.WriteFile(*out, render(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "diagram:", err)
		os.Exit(1)
	}
}

// kind picks a box's colours.
type kind int

const (
	service  kind = iota // a sluice subcommand
	external             // something Sluice talks to
	topic                // a Kafka topic family
	store                // a warehouse
	monitor              // Prometheus, Grafana
	group                // the Kafka cluster around its topics
)

var fills = map[kind][2]string{ // fill, stroke
	service:  {"#dbeafe", "#1d4ed8"},
	external: {"#f3f4f6", "#4b5563"},
	topic:    {"#fef3c7", "#b45309"},
	store:    {"#dcfce7", "#15803d"},
	monitor:  {"#fce7f3", "#be185d"},
	group:    {"#fffbeb", "#b45309"},
}

// box is a labelled rectangle; the first line is bold.
type box struct {
	id         string
	x, y, w, h int
	kind       kind
	lines      []string
}

// edge is an arrow along points (absolute coordinates), with an optional label at
// (lx, ly); dashed edges are reads of metadata or metrics, solid ones carry records.
type edge struct {
	pts    [][2]int
	label  string
	lx, ly int
	dashed bool
}

var boxes = []box{
	{"clients", 20, 60, 150, 60, external, []string{"clients", "REST, WebSocket,", "CloudEvents"}},
	{"gen", 20, 150, 150, 60, external, []string{"load", "sluice generate,", "go run ./bench, k6"}},
	{"ingest", 230, 80, 150, 80, service, []string{"sluice ingest", "validate, dedup key,", "Avro, acks=all,", "idempotent producer"}},
	{"registry", 230, 250, 150, 50, external, []string{"schema registry", "<topic>-value"}},
	{"kafka", 440, 20, 240, 310, group, []string{"Kafka (MSK; kfake in dev)"}},
	{"raw", 460, 60, 200, 30, topic, []string{"<topic>  (raw events)"}},
	{"clean", 460, 100, 200, 30, topic, []string{"<topic>.clean"}},
	{"agg", 460, 140, 200, 30, topic, []string{"agg.<aggregation>"}},
	{"dlq", 460, 180, 200, 30, topic, []string{"<topic>.dlq, <topic>.late"}},
	{"retry", 460, 220, 200, 30, topic, []string{"_sluice.retry.5s | 1m | 10m"}},
	{"internal", 460, 260, 200, 50, topic, []string{"_sluice.* repartition", "and state changelogs"}},
	{"process", 440, 380, 240, 80, service, []string{"sluice process", "clean, retry, repartition, aggregate", "one Kafka transaction per batch:", "outputs + state + input offsets"}},
	{"sink", 740, 90, 150, 80, service, []string{"sluice sink", "per partition: claim,", "stage, compare-and-set", "offset + MERGE, commit"}},
	{"wh", 950, 70, 180, 110, store, []string{"warehouse", "DuckDB (dev, default)", "or Snowflake", "PURCHASES, CLICKS, ...", "AGGREGATES, SLUICE_OFFSETS"}},
	{"query", 950, 230, 180, 50, external, []string{"sluice query", "SQL, --json"}},
	{"prom", 740, 390, 170, 60, monitor, []string{"Prometheus", "+ Alertmanager", "scrapes /metrics"}},
	{"grafana", 950, 390, 180, 60, monitor, []string{"Grafana", "six dashboards"}},
}

var edges = []edge{
	{pts: [][2]int{{170, 100}, {230, 100}}, label: "POST /api/v1/events", lx: 200, ly: 52},
	{pts: [][2]int{{170, 180}, {200, 180}, {200, 140}, {230, 140}}},
	{pts: [][2]int{{380, 95}, {420, 95}, {420, 75}, {460, 75}}, label: "202 after ack", lx: 400, ly: 52},
	{pts: [][2]int{{305, 250}, {305, 160}}, dashed: true, label: "schemas", lx: 340, ly: 215},
	{pts: [][2]int{{380, 285}, {410, 285}, {410, 420}, {440, 420}}, dashed: true},
	{pts: [][2]int{{500, 330}, {500, 380}}, label: "read_committed", lx: 470, ly: 360},
	{pts: [][2]int{{620, 380}, {620, 330}}, label: "transaction", lx: 652, ly: 360},
	{pts: [][2]int{{660, 115}, {740, 115}}},
	{pts: [][2]int{{660, 155}, {710, 155}, {710, 145}, {740, 145}}},
	{pts: [][2]int{{890, 130}, {950, 130}}, label: "rows + offsets", lx: 920, ly: 62},
	{pts: [][2]int{{1040, 230}, {1040, 180}}, dashed: true},
	{pts: [][2]int{{230, 155}, {215, 155}, {215, 480}, {825, 480}, {825, 450}}, dashed: true},
	{pts: [][2]int{{680, 430}, {740, 430}}, dashed: true},
	{pts: [][2]int{{815, 170}, {815, 390}}, dashed: true, label: "/metrics", lx: 845, ly: 300},
	{pts: [][2]int{{910, 420}, {950, 420}}, dashed: true},
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// render returns the whole SVG document.
func render() []byte {
	const width, height = 1150, 500
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	b.WriteString(`<title>Sluice architecture: ingest, Kafka, processor, sink, warehouse, monitoring</title>` + "\n")
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#374151"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	for _, x := range boxes {
		c := fills[x.kind]
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n", x.x, x.y, x.w, x.h, c[0], c[1])
		if x.kind == group {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-weight="bold" fill="%s">%s</text>`+"\n", x.x+x.w/2, x.y+22, c[1], esc(x.lines[0]))
			continue
		}
		const lh = 15
		top := x.y + x.h/2 - (len(x.lines)-1)*lh/2 + 4
		for i, l := range x.lines {
			weight := ""
			if i == 0 && x.kind != topic {
				weight = ` font-weight="bold"`
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle"%s>%s</text>`+"\n", x.x+x.w/2, top+i*lh, weight, esc(l))
		}
	}
	for _, e := range edges {
		var pts []string
		for _, p := range e.pts {
			pts = append(pts, fmt.Sprintf("%d,%d", p[0], p[1]))
		}
		dash := ""
		if e.dashed {
			dash = ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#374151" stroke-width="1.4"%s marker-end="url(#arrow)"/>`+"\n", strings.Join(pts, " "), dash)
		if e.label != "" {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="11" fill="#374151">%s</text>`+"\n", e.lx, e.ly, esc(e.label))
		}
	}
	b.WriteString(`<text x="20" y="490" font-size="11" fill="#6b7280">solid: records; dashed: schemas, metrics, queries. Generated by go run ./docs/diagram</text>` + "\n")
	b.WriteString("</svg>\n")
	return b.Bytes()
}
