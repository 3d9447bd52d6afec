package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// target is one of issue #12's goals, judged on a run's results.
type target struct {
	Goal, Status, Detail string // Status: met, not met, not measured.
}

func judged(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

// targets judges the run against the goals.
func targets(r results) []target {
	return []target{ceilingTarget(r), aheadTarget(r), propagationTarget(r), memoryTarget(r)}
}

// ceilingTarget: skydns at 90% of the fixed responder or more on every
// in-zone mix at 10,000 and 100,000 services.
func ceilingTarget(r results) target {
	t := target{Goal: "skydns ≥ 90% of the ceiling on every in-zone mix at 10k and 100k services", Status: "not measured"}
	var parts []string
	worst := math.Inf(1)
	for _, s := range r.Sizes {
		mix, ratio := lowest(s, func(mix string, m map[string]*mixResult) (float64, bool) {
			sk, ok := m["skydns"]
			return sk.ratioOr(ok), ok && inZone(mix)
		})
		if mix == "" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: lowest %.0f%% (%s)", countLabel(s.Services), 100*ratio, mix))
		if s.Services == 10000 || s.Services == 100000 {
			worst = min(worst, ratio)
		}
	}
	if !math.IsInf(worst, 1) {
		t.Status = judged(worst >= 0.9)
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// aheadTarget: skydns's QPS above every CoreDNS configuration's on every
// mix, at every size.
func aheadTarget(r results) target {
	t := target{Goal: "skydns ahead of every CoreDNS configuration on every mix", Status: "not measured"}
	worst, where := math.Inf(1), ""
	for _, s := range r.Sizes {
		for _, mix := range slices.Sorted(maps.Keys(s.Mixes)) {
			m := s.Mixes[mix]
			sk, ok := m["skydns"]
			if !ok {
				continue
			}
			for name, c := range m {
				if strings.HasPrefix(name, "coredns") && c.QPS > 0 && sk.QPS/c.QPS < worst {
					worst, where = sk.QPS/c.QPS, fmt.Sprintf("%s, %s vs %s", countLabel(s.Services), mix, name)
				}
			}
		}
	}
	if where != "" {
		t.Status = judged(worst > 1)
		t.Detail = fmt.Sprintf("closest: skydns at %.2f× (%s)", worst, where)
	}
	return t
}

// propagationTarget: skydns's p99 from create to answer at or below
// CoreDNS's kubernetes plugin's, and under 250 ms.
func propagationTarget(r results) target {
	t := target{Goal: "propagation p99 ≤ CoreDNS's (kubernetes plugin) and < 250 ms", Status: "not measured"}
	p := r.Propagation
	if p == nil {
		return t
	}
	sk, ok := p.P99["skydns"]
	if !ok {
		return t
	}
	cd, hasCD := p.P99["coredns-k8s"]
	t.Status = judged(sk < 250 && (!hasCD || sk <= cd))
	t.Detail = fmt.Sprintf("skydns p99 %.0f ms", sk)
	if hasCD {
		t.Detail += fmt.Sprintf(", coredns-k8s p99 %.0f ms (ratio %.2f)", cd, sk/cd)
	}
	if lag, ok := p.BehindP99["skydns"]; ok {
		t.Detail += fmt.Sprintf("; skydns behind coredns-k8s for the same create: p50 %.1f ms, p99 %.1f ms", p.BehindP50["skydns"], lag)
	}
	if tmpfs, ok := p.P99[tmpfsPodServer]; ok {
		t.Detail += fmt.Sprintf("; with the pod's etcd on tmpfs (%s) p99 %.0f ms", tmpfsPodServer, tmpfs)
	}
	t.Detail += fmt.Sprintf(", at %s services", countLabel(p.Services))
	return t
}

// memoryTarget: skydns's peak RSS at 100,000 services below CoreDNS's
// published estimate, (pods + services)/1000 + 54 MB, for skydns as the
// Deployment runs it (skydns-memlimit) when the run has it.
func memoryTarget(r results) target {
	t := target{Goal: "skydns peak RSS at 100k services below CoreDNS's formula ((pods + services)/1000 + 54 MB)", Status: "not measured"}
	for _, s := range r.Sizes {
		name := "skydns-memlimit"
		rss, ok := s.RSS[name]
		if !ok {
			name = "skydns"
			rss, ok = s.RSS[name]
		}
		if s.Services != 100000 || !ok {
			continue
		}
		mb := rss * 1.048576 // MiB to MB, the formula's unit.
		t.Status = judged(mb < s.CoreDNSFormula)
		t.Detail = fmt.Sprintf("%s: %.0f MB against %.0f MB (ratio %.2f)", name, mb, s.CoreDNSFormula, mb/s.CoreDNSFormula)
		if plain, ok := s.RSS["skydns"]; ok && name != "skydns" {
			t.Detail += fmt.Sprintf("; without GOMEMLIMIT %.0f MB", plain*1.048576)
		}
	}
	return t
}

// lowest is the mix with the lowest value that pick accepts, and the value.
func lowest(s sizeResult, pick func(mix string, m map[string]*mixResult) (float64, bool)) (string, float64) {
	best, at := math.Inf(1), ""
	for _, mix := range slices.Sorted(maps.Keys(s.Mixes)) {
		if v, ok := pick(mix, s.Mixes[mix]); ok && v < best {
			best, at = v, mix
		}
	}
	return at, best
}

// ratioOr is the result's ratio, 0 without one.
func (m *mixResult) ratioOr(ok bool) float64 {
	if !ok || m == nil {
		return 0
	}
	return m.Ratio
}

// countLabel is 1,000 as "1k", 100,000 as "100k".
func countLabel(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
