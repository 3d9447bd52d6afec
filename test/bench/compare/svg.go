package main

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// barChart is a grouped bar chart: one group of bars per category, one
// bar per series in each, on a linear axis from zero.
type barChart struct {
	Title, YLabel string
	Categories    []string
	Series        []series
}

// series is one bar of each category; a NaN value draws no bar.
type series struct {
	Name   string
	Values []float64
}

// The layout, in SVG user units.
const (
	chartW, chartH           = 880, 420
	marginL, marginR         = 70, 190 // The legend sits in the right margin.
	marginT, marginB         = 40, 60
	plotW, plotH             = chartW - marginL - marginR, chartH - marginT - marginB
	gridLines                = 5
	groupGap         float64 = 0.2 // Of a group's width, left empty between groups.
)

// palette tells the series apart; it repeats past its length.
var palette = []string{"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4"}

// SVG renders the chart as a standalone SVG document.
func (c barChart) SVG() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", marginL, esc(c.Title))
	top := niceCeiling(c.max())
	c.axes(&b, top)
	c.bars(&b, top)
	c.legend(&b)
	b.WriteString("</svg>\n")
	return b.String()
}

// axes draws the horizontal grid with its values, the y label and the
// category names.
func (c barChart) axes(b *strings.Builder, top float64) {
	for i := 0; i <= gridLines; i++ {
		v := top * float64(i) / gridLines
		y := marginT + plotH - plotH*float64(i)/gridLines
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", marginL, y, marginL+plotW, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", marginL-6, y+4, formatValue(v))
	}
	fmt.Fprintf(b, `<text transform="translate(16 %d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", marginT+plotH/2, esc(c.YLabel))
	w := groupWidth(len(c.Categories))
	for i, cat := range c.Categories {
		x := marginL + w*(float64(i)+0.5)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, marginT+plotH+18, esc(cat))
	}
}

// bars draws each series' bar in each category, with its value as a tooltip.
func (c barChart) bars(b *strings.Builder, top float64) {
	w := groupWidth(len(c.Categories))
	barW := w * (1 - groupGap) / float64(max(1, len(c.Series)))
	for s, ser := range c.Series {
		for i, v := range ser.Values {
			if math.IsNaN(v) || i >= len(c.Categories) {
				continue
			}
			h := plotH * v / top
			x := marginL + w*float64(i) + w*groupGap/2 + barW*float64(s)
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
				x, marginT+plotH-h, barW, h, palette[s%len(palette)], esc(ser.Name), esc(c.Categories[i]), formatValue(v))
		}
	}
}

func (c barChart) legend(b *strings.Builder) {
	x := chartW - marginR + 16
	for s, ser := range c.Series {
		y := marginT + 18*s
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", x, y, palette[s%len(palette)])
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+18, y+10, esc(ser.Name))
	}
}

// max is the largest value drawn (0 when there is none).
func (c barChart) max() float64 {
	m := 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			if !math.IsNaN(v) {
				m = max(m, v)
			}
		}
	}
	return m
}

func groupWidth(categories int) float64 { return float64(plotW) / float64(max(1, categories)) }

// niceCeiling is the smallest of 1, 2, 2.5 or 5 times a power of ten at
// or above v, so that the grid's values are round; 1 for nothing.
func niceCeiling(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// formatValue prints an axis or tooltip value compactly: 12k, 1.5M, 0.25.
func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trimZero(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case a >= 1e4:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case a >= 100 || a == 0:
		return fmt.Sprintf("%.0f", v)
	default:
		return trimZero(fmt.Sprintf("%.2f", v))
	}
}

func trimZero(s string) string { return strings.TrimSuffix(strings.TrimRight(s, "0"), ".") }

func esc(s string) string { return html.EscapeString(s) }
