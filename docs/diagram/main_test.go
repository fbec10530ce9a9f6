package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"os"
	"testing"
)

// The committed docs/architecture.svg is what this program draws, and it is well-formed XML.
func TestSVGUpToDate(t *testing.T) {
	got, err := os.ReadFile("../architecture.svg")
	if err != nil {
		t.Fatal(err)
	}
	want := render()
	if !bytes.Equal(got, want) {
		t.Fatal("docs/architecture.svg is stale: run `go run ./docs/diagram` from the repository root")
	}
	d := xml.NewDecoder(bytes.NewReader(want))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
	}
}

// Every edge starts and ends on or next to a box edge, so a moved box cannot leave an
// arrow dangling in empty space.
func TestEdgesTouchBoxes(t *testing.T) {
	near := func(p [2]int) bool {
		const slack = 2
		for _, b := range boxes {
			inX := p[0] >= b.x-slack && p[0] <= b.x+b.w+slack
			inY := p[1] >= b.y-slack && p[1] <= b.y+b.h+slack
			onX := p[0] >= b.x-slack && p[0] <= b.x+slack || p[0] >= b.x+b.w-slack && p[0] <= b.x+b.w+slack
			onY := p[1] >= b.y-slack && p[1] <= b.y+slack || p[1] >= b.y+b.h-slack && p[1] <= b.y+b.h+slack
			if inX && inY && (onX || onY) {
				return true
			}
		}
		return false
	}
	for i, e := range edges {
		if len(e.pts) < 2 {
			t.Errorf("edge %d has %d points", i, len(e.pts))
			continue
		}
		if !near(e.pts[0]) || !near(e.pts[len(e.pts)-1]) {
			t.Errorf("edge %d (%v) does not start and end on a box", i, e.pts)
		}
	}
}
