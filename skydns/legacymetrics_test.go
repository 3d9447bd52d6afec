package skydns

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// SkyDNS 2.5's names, under PROMETHEUS_NAMESPACE and _SUBSYSTEM, carry
// the counts of today's metrics.
func TestLegacyMetricsFollowTodays(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, nil)
	reg.MustRegister(NewLegacyMetrics(m, "kube", "dns"))
	for _, q := range []struct {
		proto string
		rcode int
	}{{"udp", dns.RcodeSuccess}, {"udp", dns.RcodeNameError}, {"tcp", dns.RcodeServerFailure}, {"udp", dns.RcodeNameError}} {
		shard := m.nextShard()
		shard.request(q.proto == "tcp", dns.TypeA)
		shard.response(q.proto == "tcp", q.rcode, 0.002)
	}
	m.forwardResult("recursive", nil)
	m.forwardResult("stub", errAllFailed)
	m.nextShard().lookup(false)
	m.udpCapped.Inc()
	want := `
# HELP kube_dns_dns_error_count SkyDNS 2.5's dns_error_count, derived from today's metrics (docs/compatibility.md).
# TYPE kube_dns_dns_error_count counter
kube_dns_dns_error_count{error="nxdomain"} 2
kube_dns_dns_error_count{error="refused"} 0
kube_dns_dns_error_count{error="servfail"} 1
kube_dns_dns_error_count{error="truncated"} 1
# HELP kube_dns_dns_request_count SkyDNS 2.5's dns_request_count, derived from today's metrics (docs/compatibility.md).
# TYPE kube_dns_dns_request_count counter
kube_dns_dns_request_count{type="tcp"} 1
kube_dns_dns_request_count{type="udp"} 3
# HELP kube_dns_dns_request_external_count SkyDNS 2.5's dns_request_external_count, derived from today's metrics (docs/compatibility.md).
# TYPE kube_dns_dns_request_external_count counter
kube_dns_dns_request_external_count{type="recursive"} 1
kube_dns_dns_request_external_count{type="stub"} 1
# HELP kube_dns_dns_cache_miss_count SkyDNS 2.5's dns_cache_miss_count, derived from today's metrics (docs/compatibility.md).
# TYPE kube_dns_dns_cache_miss_count counter
kube_dns_dns_cache_miss_count{type="response"} 1
kube_dns_dns_cache_miss_count{type="signature"} 0
`
	names := []string{"kube_dns_dns_error_count", "kube_dns_dns_request_count", "kube_dns_dns_request_external_count", "kube_dns_dns_cache_miss_count"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kube_dns_dns_request_duration" {
			continue
		}
		for _, metric := range f.GetMetric() {
			if got, want := metric.GetHistogram().GetSampleCount(), map[string]uint64{"udp": 3, "tcp": 1}[labelValue(metric, "type")]; got != want {
				t.Errorf("dns_request_duration{type=%q} count %d, want %d", labelValue(metric, "type"), got, want)
			}
		}
		return
	}
	t.Error("no kube_dns_dns_request_duration")
}

// The legacy environment: namespace and subsystem, and Graphite and
// StatHat noted as unsupported rather than ignored.
func TestLegacyMetricsEnvironment(t *testing.T) {
	env := map[string]string{"PROMETHEUS_NAMESPACE": "ops", "GRAPHITE_SERVER": "10.0.0.1:2003", "STATHAT_USER": "me"}
	c := NewConfig(func(k string) string { return env[k] })
	if c.LegacyMetrics.Namespace != "ops" || c.LegacyMetrics.Subsystem != "skydns" {
		t.Errorf("legacy metrics %+v, want ops/skydns", c.LegacyMetrics)
	}
	if got := strings.Join(c.Unsupported, " "); got != "GRAPHITE_SERVER=10.0.0.1:2003 STATHAT_USER=me" {
		t.Errorf("unsupported %q", got)
	}
}
