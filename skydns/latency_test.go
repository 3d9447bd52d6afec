package skydns

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A scrape shows the UDP series as if every shard's observations had been
// the vec's own; the TCP series is the vec's alone.
func TestLatencyShardsMergeIntoTheUDPSeries(t *testing.T) {
	cases := []struct {
		name           string
		vec, shards    []float64 // Observed through the vec's udp series; through two shards, alternately.
		tcp            []float64
		wantCount      uint64
		wantSum        float64
		wantCumulative []uint64 // Buckets 0.001, 0.01, 0.1.
		wantTCPCount   uint64
	}{
		{"vec only", []float64{0.0005, 0.05}, nil, []float64{0.2}, 2, 0.0505, []uint64{1, 1, 2}, 1},
		{"shards only", nil, []float64{0.001, 0.002, 5}, nil, 3, 5.003, []uint64{1, 2, 2}, 0},
		{"both", []float64{0.0001}, []float64{0.01, 0.2, 0.0009}, nil, 4, 0.2110, []uint64{2, 3, 3}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLatencyHistogram(prometheus.HistogramOpts{Name: "d", Help: "h", Buckets: []float64{0.001, 0.01, 0.1}}, "proto")
			reg := prometheus.NewRegistry()
			reg.MustRegister(l)
			shards := []*latencyShard{l.shard("udp"), l.shard("udp")}
			for _, v := range tc.vec {
				l.vec.WithLabelValues("udp").Observe(v)
			}
			for i, v := range tc.shards {
				shards[i%2].observe(v)
			}
			for _, v := range tc.tcp {
				l.vec.WithLabelValues("tcp").Observe(v)
			}
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var udpSeen bool
			for _, m := range families[0].GetMetric() {
				h := m.GetHistogram()
				if m.GetLabel()[0].GetValue() == "tcp" {
					if h.GetSampleCount() != tc.wantTCPCount {
						t.Errorf("tcp count %d, want %d", h.GetSampleCount(), tc.wantTCPCount)
					}
					continue
				}
				udpSeen = true
				if h.GetSampleCount() != tc.wantCount || h.GetSampleSum() < tc.wantSum-1e-9 || h.GetSampleSum() > tc.wantSum+1e-9 {
					t.Errorf("udp count %d sum %v, want %d %v", h.GetSampleCount(), h.GetSampleSum(), tc.wantCount, tc.wantSum)
				}
				for i, b := range h.GetBucket() {
					if b.GetCumulativeCount() != tc.wantCumulative[i] {
						t.Errorf("bucket %v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), tc.wantCumulative[i])
					}
				}
			}
			if !udpSeen && tc.wantCount > 0 {
				t.Error("no udp series")
			}
		})
	}
}
