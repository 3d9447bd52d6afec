package healthz

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are exec-healthz's Prometheus metrics, by probe path.
type Metrics struct {
	runs     *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.GaugeVec
	cut      *prometheus.CounterVec
	orphans  prometheus.Counter
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "exechealthz", Name: "probe_runs_total", Help: "Probe command runs.",
		}, []string{"url"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "exechealthz", Name: "probe_failures_total", Help: "Probe command runs that failed or timed out.",
		}, []string{"url"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "exechealthz", Name: "probe_last_duration_seconds", Help: "How long the last run took.",
		}, []string{"url"}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "exechealthz", Name: "probe_output_truncated_total", Help: "Probe command runs whose output passed the bound and was cut.",
		}, []string{"url"}),
		orphans: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "exechealthz", Name: "orphans_reaped_total", Help: "Exited processes reaped that were not a probe command: descendants orphaned by one.",
		}),
	}
	reg.MustRegister(m.runs, m.failures, m.duration, m.cut, m.orphans)
	return m
}

// start exports url's failure and truncation counters at 0, before its
// first run: a rate over a counter that appears at 1 on the first failure
// misses that failure, and an alert on the failure rate would wait for a
// second one. Runs count from the first run, which readers wait on.
func (m *Metrics) start(url string) {
	m.failures.WithLabelValues(url)
	m.cut.WithLabelValues(url)
}

func (m *Metrics) observe(url string, err error, took time.Duration, cut bool) {
	m.runs.WithLabelValues(url).Inc()
	if cut {
		m.cut.WithLabelValues(url).Inc()
	}
	if err != nil {
		m.failures.WithLabelValues(url).Inc()
	}
	m.duration.WithLabelValues(url).Set(took.Seconds())
}
