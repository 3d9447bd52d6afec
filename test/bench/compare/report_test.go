package main

import (
	"strings"
	"testing"
)

// sample is a run's results at one size with two servers and propagation.
func sample(skydnsRatio, skydnsQPS, corednsQPS, p99 float64) results {
	mixes := map[string]map[string]*mixResult{}
	for _, mix := range []string{mixA, mixForward} {
		mixes[mix] = map[string]*mixResult{
			"fixed":       {QPS: 100000, Ratio: 1, Rcodes: map[string]int{"NOERROR": 10}},
			"skydns":      {QPS: skydnsQPS, Ratio: skydnsRatio, CPUPerQuery: 12.5, Rcodes: map[string]int{"NOERROR": 9, "NXDOMAIN": 1}},
			"coredns-k8s": {QPS: corednsQPS, Ratio: corednsQPS / 100000, Lost: 1, Rcodes: map[string]int{"NOERROR": 9}},
		}
	}
	size := sizeResult{Services: 10000, Mixes: mixes, Ready: map[string]float64{"skydns": 0.5}, RSS: map[string]float64{"skydns": 40},
		CoreDNSFormula: 64, QueryCounts: map[string]int{mixA: 9000}, Latency: map[string]latencyResult{"skydns": {P50: 0.1, P99: 1}}}
	return results{
		Servers: []serverInfo{{"fixed", "ceiling"}, {"skydns", "ours"}, {"coredns-k8s", "theirs"}},
		Sizes:   []sizeResult{size}, Versions: map[string]string{"go": "go1.26"},
		Propagation: &propagationResult{Services: 10000, P50: map[string]float64{"skydns": 20, "coredns-k8s": 30},
			P99: map[string]float64{"skydns": p99, "coredns-k8s": 60}, Max: map[string]float64{"skydns": 80, "coredns-k8s": 90}},
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    results
		want []string // Status of each target, in order.
	}{
		{"all met but memory unmeasured", sample(0.95, 95000, 50000, 40), []string{"met", "met", "met", "not measured"}},
		{"below the ceiling target", sample(0.85, 85000, 50000, 40), []string{"not met", "met", "met", "not measured"}},
		{"behind CoreDNS", sample(0.95, 40000, 50000, 40), []string{"met", "not met", "met", "not measured"}},
		{"propagation slower than CoreDNS", sample(0.95, 95000, 50000, 70), []string{"met", "met", "not met", "not measured"}},
		{"nothing measured", results{}, []string{"not measured", "not measured", "not measured", "not measured"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, got := range targets(tc.r) {
				if got.Status != tc.want[i] {
					t.Errorf("target %d (%s): %s, want %s (%s)", i, got.Goal, got.Status, tc.want[i], got.Detail)
				}
			}
		})
	}
}

func TestRender(t *testing.T) {
	doc, err := render(sample(0.95, 95000, 50000, 40))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| skydns | 95000 (95%) | 95000 (95%) |", // QPS and share of the ceiling, per mix.
		"| coredns-k8s | 50000 (50%) |",
		"NOERROR 90%, NXDOMAIN 10%",
		"benchmarks/qps-10k.svg",
		"| skydns | 20.0 | 40.0 | 80.0 |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("no %q in:\n%s", want, doc)
		}
	}
	if strings.Contains(doc, "<no value>") {
		t.Errorf("a field the template names is missing:\n%s", doc)
	}
	if n := len(charts(sample(1, 1, 1, 1))); n != 3 {
		t.Errorf("%d charts for one size, want qps, latency and rss", n)
	}
}

func TestCommandLine(t *testing.T) {
	env := map[string]string{"BENCH_SIZES": "1000", "HOME": "/root"}
	got := commandLine([]string{"-out", "docs"}, func(k string) string { return env[k] })
	if want := "BENCH_SIZES=1000 go run ./test/bench/compare -out docs"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}
