package skydns

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// legacyMetrics serves SkyDNS 2.5's metric names beside today's, so
// dashboards and alerts written for the original keep working:
// <PROMETHEUS_NAMESPACE>_<PROMETHEUS_SUBSYSTEM>_dns_request_count and the
// rest (legacy-behaviour.md §2.12). They are derived at scrape time from
// today's metrics, so they cost nothing per query. They keep the original
// names, which predate Prometheus's naming rules (a counter without
// _total), so they stay out of the lint of today's (metrics_lint_test.go).
//
// Differences from the original, each documented in docs/compatibility.md:
// dns_request_duration has today's buckets, not 0.001, 0.003 and the
// defaults; dns_error_count counts nxdomain too (the original never
// incremented it); dns_response_size and dns_dnssec_ok_count are not
// served (no response-size histogram is kept, nor a count of DO requests).
type legacyMetrics struct {
	m                    *Metrics
	namespace, subsystem string
}

// NewLegacyMetrics returns the collector for m under the namespace and
// subsystem SkyDNS took from PROMETHEUS_NAMESPACE and PROMETHEUS_SUBSYSTEM.
func NewLegacyMetrics(m *Metrics, namespace, subsystem string) prometheus.Collector {
	return &legacyMetrics{m: m, namespace: namespace, subsystem: subsystem}
}

// Describe sends nothing: an unchecked collector, since the families are
// copies of others the registry already checked.
func (l *legacyMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect derives each legacy family from the current values.
func (l *legacyMetrics) Collect(ch chan<- prometheus.Metric) {
	l.counters(ch, "dns_request_count", "type", sumByLabel(l.m.requests, "proto"))
	l.counters(ch, "dns_request_external_count", "type", sumByLabel(l.m.forwards, "kind"))
	l.counters(ch, "dns_cache_miss_count", "type", map[string]float64{
		"response": sumByLabel(l.m.lookups, "result")["miss"], "signature": collectedSum(l.m.signatureMisses),
	})
	rcodes := sumByLabel(l.m.responses, "rcode")
	l.counters(ch, "dns_error_count", "error", map[string]float64{
		"servfail":  rcodes["SERVFAIL"],
		"refused":   rcodes["REFUSED"],
		"nxdomain":  rcodes["NXDOMAIN"],
		"truncated": collectedSum(l.m.udpCapped),
	})
	desc := l.desc("dns_request_duration", "type")
	for _, metric := range gather(l.m.duration) {
		h := metric.GetHistogram()
		buckets := make(map[float64]uint64, len(h.GetBucket()))
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		ch <- prometheus.MustNewConstHistogram(desc, h.GetSampleCount(), h.GetSampleSum(), buckets, labelValue(metric, "proto"))
	}
}

func (l *legacyMetrics) desc(name, label string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(l.namespace, l.subsystem, name),
		"SkyDNS 2.5's "+name+", derived from today's metrics (docs/compatibility.md).", []string{label}, nil)
}

// counters sends one counter per label value.
func (l *legacyMetrics) counters(ch chan<- prometheus.Metric, name, label string, values map[string]float64) {
	desc := l.desc(name, label)
	for value, n := range values {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, n, value)
	}
}

// gather reads the current metrics of c.
func gather(c prometheus.Collector) []*dto.Metric {
	var out []*dto.Metric
	eachCollected(c, func(_ prometheus.Metric, pb *dto.Metric) {
		if pb != nil {
			out = append(out, pb)
		}
	})
	return out
}

// sumByLabel adds up c's counters by the value of one label.
func sumByLabel(c prometheus.Collector, label string) map[string]float64 {
	sums := map[string]float64{}
	for _, m := range gather(c) {
		sums[labelValue(m, label)] += m.GetCounter().GetValue()
	}
	return sums
}

func collectedSum(c prometheus.Collector) float64 {
	var sum float64
	for _, m := range gather(c) {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}
