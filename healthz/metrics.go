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
	}
	reg.MustRegister(m.runs, m.failures, m.duration)
	return m
}

func (m *Metrics) observe(url string, err error, took time.Duration) {
	m.runs.WithLabelValues(url).Inc()
	if err != nil {
		m.failures.WithLabelValues(url).Inc()
	}
	m.duration.WithLabelValues(url).Set(took.Seconds())
}
