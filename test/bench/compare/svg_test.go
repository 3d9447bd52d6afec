package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

func TestNiceCeiling(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, 1}, {-3, 1}, {1, 1}, {1.2, 2}, {2.2, 2.5}, {3, 5}, {7, 10}, {95000, 100000}, {120000, 200000}, {0.03, 0.05},
	} {
		if got := niceCeiling(tc.in); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("niceCeiling(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {0.25, "0.25"}, {2.5, "2.5"}, {150, "150"}, {9999, "9999"}, {12000, "12k"}, {12500, "12.5k"}, {1500000, "1.5M"},
	} {
		if got := formatValue(tc.in); got != tc.want {
			t.Errorf("formatValue(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBarChartSVG(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chart barChart
		bars  int
	}{
		{"two series", barChart{Title: "QPS <by> mix", YLabel: "qps", Categories: []string{"a", "srv"},
			Series: []series{{"skydns", []float64{100, 50}}, {"coredns", []float64{80, math.NaN()}}}}, 3},
		{"empty", barChart{Title: "nothing"}, 0},
		{"all zero", barChart{Categories: []string{"a"}, Series: []series{{"x", []float64{0}}}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.chart.SVG()
			if n := countBars(t, out); n != tc.bars {
				t.Errorf("%d bars, want %d", n, tc.bars)
			}
			if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
				t.Errorf("a coordinate is not a number:\n%s", out)
			}
		})
	}
}

// countBars parses the SVG as XML (so it is well formed) and counts the
// bars: the rects with a tooltip.
func countBars(t *testing.T, svg string) int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	bars, inRect := 0, false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return bars
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if e.Name.Local == "title" && inRect {
				bars++
			}
			inRect = e.Name.Local == "rect"
		case xml.EndElement:
			if e.Name.Local == "rect" {
				inRect = false
			}
		}
	}
}
