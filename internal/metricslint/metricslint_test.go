package metricslint

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestProblems(t *testing.T) {
	counter := func(name string) prometheus.Collector {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "Things counted."})
	}
	vec := func(observe bool) prometheus.Collector {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lookups_total", Help: "Lookups by result."}, []string{"result"})
		if observe {
			v.WithLabelValues("hit").Inc()
		}
		return v
	}
	for _, tc := range []struct {
		name      string
		collector prometheus.Collector
		want      string // a problem containing this; "" for none
	}{
		{"well named counter", counter("things_total"), ""},
		{"counter without _total", counter("things"), `things: counter metrics should have "_total" suffix`},
		{"abbreviated unit", prometheus.NewGauge(prometheus.GaugeOpts{Name: "latency_ms", Help: "Latency."}), "latency_ms: metric names should not contain abbreviated units"},
		{"vector with a label set", vec(true), ""},
		{"vector never observed", vec(false), "lookups_total: registered but not gathered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			r.MustRegister(tc.collector)
			problems, err := Problems(r)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(problems) != 0 {
					t.Fatalf("problems %q, want none", problems)
				}
				return
			}
			if len(problems) != 1 || !strings.Contains(problems[0], tc.want) {
				t.Fatalf("problems %q, want one containing %q", problems, tc.want)
			}
		})
	}
}
