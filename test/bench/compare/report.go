package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"
)

//go:embed benchmarks.md.tmpl
var docTemplate string

// write saves the raw results, the plots and docs/benchmarks.md.
func (b *bench) write(r results) {
	dir := filepath.Join(b.c.out, "benchmarks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.s.Fatal(err)
	}
	raw, _ := json.MarshalIndent(r, "", "  ")
	files := map[string]string{filepath.Join(dir, "results.json"): string(raw) + "\n"}
	for name, chart := range charts(r) {
		files[filepath.Join(dir, name)] = chart.SVG()
	}
	doc, err := render(r)
	if err != nil {
		b.s.Fatal(err)
	}
	files[filepath.Join(b.c.out, "benchmarks.md")] = doc
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			b.s.Fatal(err)
		}
	}
	b.s.Logf(">> wrote %s and %s (%.1f minutes)", filepath.Join(b.c.out, "benchmarks.md"), dir, r.DurationMinutes)
}

// render fills the document's template with r.
func render(r results) (string, error) {
	t, err := template.New("doc").Funcs(template.FuncMap{
		"count": countLabel, "f0": f(0), "f1": f(1), "f2": f(2), "pct": pct,
		"cell": qpsCell, "cpu": cpuCell, "rcodes": rcodeCell, "servers": serverNames,
		"mixes": mixNames, "targets": targets, "keysS": sortedKeys[string], "keysF": sortedKeys[float64],
	}).Parse(docTemplate)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = t.Execute(&b, r)
	return b.String(), err
}

func f(prec int) func(float64) string {
	return func(v float64) string { return fmt.Sprintf("%.*f", prec, v) }
}

func pct(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }

// qpsCell is a server's QPS on a mix and its share of the ceiling, or "–"
// where it was not measured.
func qpsCell(s sizeResult, mix, server string) string {
	m, ok := s.Mixes[mix][server]
	if !ok {
		return "–"
	}
	if server == "fixed" {
		return fmt.Sprintf("%.0f", m.QPS)
	}
	return fmt.Sprintf("%.0f (%s)", m.QPS, pct(m.Ratio))
}

func cpuCell(s sizeResult, mix, server string) string {
	if m, ok := s.Mixes[mix][server]; ok {
		return fmt.Sprintf("%.1f", m.CPUPerQuery)
	}
	return "–"
}

// rcodeCell is the replies' rcodes as shares, the largest first, and the
// share of queries lost: whether a server answered the mix as meant.
func rcodeCell(s sizeResult, mix, server string) string {
	m, ok := s.Mixes[mix][server]
	if !ok {
		return "–"
	}
	total := m.Lost
	for _, n := range m.Rcodes {
		total += n
	}
	if total == 0 {
		return "none"
	}
	codes := sortedKeys(m.Rcodes)
	sort.SliceStable(codes, func(i, j int) bool { return m.Rcodes[codes[i]] > m.Rcodes[codes[j]] })
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", c, 100*float64(m.Rcodes[c])/float64(total)))
	}
	if m.Lost > 0 {
		parts = append(parts, fmt.Sprintf("lost %.1f%%", 100*float64(m.Lost)/float64(total)))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// serverNames are the run's servers in report order.
func serverNames(r results) []string {
	var out []string
	for _, s := range r.Servers {
		out = append(out, s.Name)
	}
	return out
}

// mixNames are the mixes a size measured, in report order.
func mixNames(s sizeResult) []string {
	return slices.DeleteFunc(slices.Clone(allMixes), func(m string) bool { _, ok := s.Mixes[m]; return !ok })
}

// charts are the plots: QPS per server per mix and latency percentiles
// at each size, RSS per size.
func charts(r results) map[string]barChart {
	out := map[string]barChart{}
	names := serverNames(r)
	for _, s := range r.Sizes {
		mixes := mixNames(s)
		qps := barChart{Title: fmt.Sprintf("Queries per second, %s services (server on one core)", countLabel(s.Services)), YLabel: "queries per second", Categories: mixes}
		lat := barChart{Title: fmt.Sprintf("Latency at %d qps, in-zone A, %s services", r.LatencyQPS, countLabel(s.Services)), YLabel: "milliseconds", Categories: []string{"p50", "p90", "p99", "p99.9"}}
		for _, n := range names {
			qps.Series = append(qps.Series, series{n, valuesOf(mixes, func(mix string) (float64, bool) {
				m, ok := s.Mixes[mix][n]
				return m.qpsOr(ok), ok
			})})
			if l, ok := s.Latency[n]; ok {
				lat.Series = append(lat.Series, series{n, []float64{l.P50, l.P90, l.P99, l.P999}})
			}
		}
		out[fmt.Sprintf("qps-%s.svg", countLabel(s.Services))] = qps
		out[fmt.Sprintf("latency-%s.svg", countLabel(s.Services))] = lat
	}
	out["rss.svg"] = rssChart(r, names)
	return out
}

func (m *mixResult) qpsOr(ok bool) float64 {
	if !ok || m == nil {
		return 0
	}
	return m.QPS
}

// rssChart is each server's peak RSS at each size, beside CoreDNS's
// published estimate.
func rssChart(r results, names []string) barChart {
	c := barChart{Title: "Peak RSS by size", YLabel: "MiB"}
	for _, s := range r.Sizes {
		c.Categories = append(c.Categories, countLabel(s.Services)+" services")
	}
	for _, n := range append(names, "kube2sky", "CoreDNS formula") {
		c.Series = append(c.Series, series{n, valuesOf(r.Sizes, func(s sizeResult) (float64, bool) {
			switch n {
			case "kube2sky":
				return s.Kube2skyRSS, true
			case "CoreDNS formula":
				return s.CoreDNSFormula / 1.048576, true // MB to MiB.
			}
			v, ok := s.RSS[n]
			return v, ok
		})})
	}
	return c
}

// valuesOf maps each item to a value, NaN where there is none (no bar).
func valuesOf[T any](items []T, value func(T) (float64, bool)) []float64 {
	out := make([]float64, len(items))
	for i, it := range items {
		v, ok := value(it)
		out[i] = v
		if !ok {
			out[i] = math.NaN()
		}
	}
	return out
}
