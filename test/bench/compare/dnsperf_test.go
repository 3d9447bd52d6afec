package main

import (
	"maps"
	"testing"
)

const perfOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5353 -d q -l 2
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         50123
  Queries completed:    50100 (99.95%)
  Queries lost:         23 (0.05%)

  Response codes:       NOERROR 40080 (80.00%), NXDOMAIN 10020 (20.00%)
  Average packet size:  request 44, response 60
  Run time (s):         2.004000
  Queries per second:   25000.000000
`

func TestParsePerf(t *testing.T) {
	r, err := parsePerf(perfOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"NOERROR": 40080, "NXDOMAIN": 10020}
	if r.Completed != 50100 || r.Lost != 23 || r.Seconds != 2.004 || !maps.Equal(r.Rcodes, want) {
		t.Errorf("got %+v", r)
	}
	if q := r.QPS(); q < 25000 || q > 25000.1 {
		t.Errorf("QPS %v, want 25000", q)
	}
	if _, err := parsePerf("dnsperf: error"); err == nil {
		t.Error("no summary: no error")
	}
}

func TestLatenciesAndPercentiles(t *testing.T) {
	out := "> NOERROR a.b. A 0.000300\n> NXDOMAIN c.d. A 0.000100\n[Timeout] x\n> NOERROR e.f. A 0.000200\n"
	v := latencies(out)
	if len(v) != 3 || v[0] != 0.0001 || v[2] != 0.0003 {
		t.Fatalf("latencies %v", v)
	}
	for _, tc := range []struct{ p, want float64 }{{0, 0.0001}, {50, 0.0002}, {99, 0.0003}, {100, 0.0003}} {
		if got := percentile(v, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
