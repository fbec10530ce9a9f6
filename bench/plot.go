package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Plot geometry, in SVG user units.
const (
	plotW      = 960
	panelH     = 260
	plotLeft   = 70
	plotRight  = 20
	plotTop    = 60
	panelGap   = 60
	plotBottom = 40
)

// series is one line of a panel.
type series struct {
	name  string
	color string
	dash  bool
	ys    []float64 // NaN: no value that second
}

// writePlot draws the run second by second as SVG: end-to-end and HTTP latency
// percentiles on a log scale, then offered, accepted and clean events per second.
func writePlot(w io.Writer, title string, secs []Second) error {
	n := len(secs)
	q := func(f func(Second) float64) []float64 {
		ys := make([]float64, n)
		for i, s := range secs {
			ys[i] = f(s)
		}
		return ys
	}
	pct := func(e2e bool, p float64) func(Second) float64 {
		return func(s Second) float64 {
			h := s.HTTP
			if e2e {
				h = s.E2E
			}
			if h == nil || h.TotalCount() == 0 {
				return math.NaN()
			}
			return float64(h.ValueAtQuantile(p)) / 1000
		}
	}
	lat := []series{
		{"e2e p50", "#1f77b4", false, q(pct(true, 50))},
		{"e2e p95", "#ff7f0e", false, q(pct(true, 95))},
		{"e2e p99", "#d62728", false, q(pct(true, 99))},
		{"HTTP p50", "#1f77b4", true, q(pct(false, 50))},
		{"HTTP p99", "#d62728", true, q(pct(false, 99))},
	}
	thr := []series{
		{"offered", "#7f7f7f", true, q(func(s Second) float64 { return float64(s.Offered) })},
		{"accepted (2xx)", "#2ca02c", false, q(func(s Second) float64 { return float64(s.Accepted) })},
		{"reached .clean", "#9467bd", false, q(func(s Second) float64 { return float64(s.Clean) })},
	}
	var b strings.Builder
	height := plotTop + 2*panelH + panelGap + plotBottom
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotW, height, plotW, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", plotLeft, escape(title))
	panel(&b, plotTop, n, "latency, ms (log scale)", true, lat)
	panel(&b, plotTop+panelH+panelGap, n, "events per second", false, thr)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">seconds since start</text>`+"\n",
		plotLeft+(plotW-plotLeft-plotRight)/2, height-8)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// panel draws one chart with its axes, grid, lines and legend at vertical offset top.
func panel(b *strings.Builder, top, n int, label string, logY bool, ss []series) {
	x0, x1 := float64(plotLeft), float64(plotW-plotRight)
	y0, y1 := float64(top+panelH), float64(top)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for _, y := range s.ys {
			if !math.IsNaN(y) && (!logY || y > 0) {
				lo, hi = math.Min(lo, y), math.Max(hi, y)
			}
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 10
	}
	var ticks []float64
	var ty func(float64) float64
	if logY {
		lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 0.01))))
		hi = math.Pow(10, math.Ceil(math.Log10(math.Max(hi, lo*10))))
		ty = func(v float64) float64 {
			v = math.Max(v, lo)
			return y0 - (math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*(y0-y1)
		}
		for t := lo; t <= hi*1.0001; t *= 10 {
			ticks = append(ticks, t)
		}
	} else {
		lo = 0
		step := niceStep(hi / 5)
		hi = math.Max(step, math.Ceil(hi/step)*step)
		ty = func(v float64) float64 { return y0 - v/hi*(y0-y1) }
		for t := 0.0; t <= hi*1.0001; t += step {
			ticks = append(ticks, t)
		}
	}
	span := math.Max(1, float64(n-1))
	tx := func(i int) float64 { return x0 + float64(i)/span*(x1-x0) }
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", plotLeft, top-8, escape(label))
	for _, t := range ticks {
		y := ty(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, tickLabel(t))
	}
	xstep := max(1, int(niceStep(float64(n)/10)))
	for i := 0; i < n; i += xstep {
		x := tx(i)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x, y0, x, y1)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", x, y0+16, i)
	}
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", x0, y1, x1-x0, y0-y1)
	for k, s := range ss {
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				dash := ""
				if s.dash {
					dash = ` stroke-dasharray="5,3"`
				}
				fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.6"%s points="%s"/>`+"\n", s.color, dash, strings.Join(pts, " "))
				pts = pts[:0]
			}
		}
		for i, y := range s.ys {
			if math.IsNaN(y) {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", tx(i), ty(y)))
		}
		flush()
		// The legend sits above the panel, right of its label, clear of the lines.
		lx := x0 + 200 + float64(k)*130
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="5,3"`
		}
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, y1-12, lx+20, y1-12, s.color, dash)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+24, y1-8, escape(s.name))
	}
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func tickLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", v)
	}
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
