package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/skypod/skypod/test/bench/benchrecords"
)

// The layout's buckets: service 0 headless (five endpoints), 10 with a
// named port, 20 a plain ClusterIP service.
var testLayout = benchrecords.Layout{Services: 100, PerNamespace: 50, HeadlessPercent: 10, Endpoints: 5, NamedPercent: 10}

func TestServiceQueries(t *testing.T) {
	for _, tc := range []struct {
		mix  string
		i    int
		want []string
	}{
		{mixA, 20, []string{"svc-20.ns-0.svc.cluster.local. A"}},
		{mixA, 0, nil}, // Headless: not a hit of this mix.
		{mixSRV, 10, []string{"_http._tcp.svc-10.ns-0.svc.cluster.local. SRV"}},
		{mixSRV, 20, nil},
		{mixHeadless, 0, []string{"svc-0.ns-0.svc.cluster.local. A"}},
		{mixHeadless, 20, nil},
		{mixPTR, 20, []string{"20.1.0.10.in-addr.arpa. PTR"}},
		{mixPTR, 1, []string{"5.0.16.172.in-addr.arpa. PTR", "6.0.16.172.in-addr.arpa. PTR", "7.0.16.172.in-addr.arpa. PTR",
			"8.0.16.172.in-addr.arpa. PTR", "9.0.16.172.in-addr.arpa. PTR"}},
		{mixNXDomain, 60, []string{
			"svc-60.ns-1.svc.cluster.local.ns-1.svc.cluster.local. A",
			"svc-60.ns-1.svc.cluster.local.svc.cluster.local. A",
			"svc-60.ns-1.svc.cluster.local.cluster.local. A",
		}},
		{mixForward, 20, nil},
	} {
		if got := serviceQueries(tc.mix, testLayout, "cluster.local.", tc.i); !slices.Equal(got, tc.want) {
			t.Errorf("%s of service %d: %q, want %q", tc.mix, tc.i, got, tc.want)
		}
	}
}

func TestRealisticLookup(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want []string
	}{
		{0, []string{"s.n.svc.d. A", "s.n.svc.d. AAAA"}}, // The bare name: found at once.
		{1, []string{"s.n.n.svc.d. A", "s.n.n.svc.d. AAAA", "s.n.svc.d. A", "s.n.svc.d. AAAA"}},
		{2, []string{"s.n.svc.n.svc.d. A", "s.n.svc.n.svc.d. AAAA", "s.n.svc.svc.d. A", "s.n.svc.svc.d. AAAA",
			"s.n.svc.d. A", "s.n.svc.d. AAAA"}},
		{3, []string{"ext-3.example.com.n.svc.d. A", "ext-3.example.com.n.svc.d. AAAA", "ext-3.example.com.svc.d. A",
			"ext-3.example.com.svc.d. AAAA", "ext-3.example.com.d. A", "ext-3.example.com.d. AAAA",
			"ext-3.example.com. A", "ext-3.example.com. AAAA"}},
	} {
		if got := realisticLookup("s", "n", "d.", tc.i); !slices.Equal(got, tc.want) {
			t.Errorf("lookup %d: %q, want %q", tc.i, got, tc.want)
		}
	}
}

func TestMixQueriesAreStableAndComplete(t *testing.T) {
	for _, mix := range allMixes {
		a, b := mixQueries(mix, testLayout, "cluster.local.", 1), mixQueries(mix, testLayout, "cluster.local.", 1)
		if len(a) == 0 || !slices.Equal(a, b) {
			t.Errorf("%s: %d queries, the same seed gives the same order: %v", mix, len(a), slices.Equal(a, b))
		}
		for _, line := range a {
			if f := strings.Fields(line); len(f) != 2 || !strings.HasSuffix(f[0], ".") {
				t.Fatalf("%s: line %q is not an absolute name and a type", mix, line)
			}
		}
	}
	if n := len(mixQueries(mixForward, testLayout, "cluster.local.", 1)); n != externalNames {
		t.Errorf("forward: %d queries, want %d", n, externalNames)
	}
}
