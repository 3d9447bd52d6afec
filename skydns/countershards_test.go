package skydns

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// A scrape adds every counter shard's counts, the UDP readers' and those
// the other queries spread over, to the metrics' own series, in today's
// metrics and in SkyDNS 2.5's names derived from them.
func TestCounterShardsAddUpInScrapes(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, nil)
	reg.MustRegister(NewLegacyMetrics(m, "kube", "dns"))
	m.requests.WithLabelValues("udp", "A").Inc()
	m.response("udp", dns.RcodeSuccess, 0.001)
	spread := m.nextShard()
	spread.request(true, dns.TypeA)
	spread.response(true, dns.RcodeNameError, 0.001)
	spread.lookup(false)
	for _, qtypes := range [][]uint16{{dns.TypeA, dns.TypeA, dns.TypeSRV}, {dns.TypeAAAA, dns.TypeNAPTR}} {
		tally := readerTally{counts: m.newShard()}
		for i, qtype := range qtypes {
			if i == 0 {
				tally.hit(qtype)
			} else {
				tally.request(qtype)
				tally.misses++
			}
			rcode := dns.RcodeSuccess
			if qtype == dns.TypeNAPTR {
				rcode = dns.RcodeNameError
			}
			if !tally.response(rcode, 0.001) {
				t.Fatalf("rcode %d not counted by the reader", rcode)
			}
		}
		tally.addUp()
	}
	if (&readerTally{}).response(dns.RcodeBadCookie, 0.001) || spread.response(false, dns.RcodeBadCookie, 0.001) {
		t.Error("an extended rcode was counted by a shard, which has no series for it")
	}
	want := `
# HELP skydns_dns_requests_total DNS requests received, by transport and query type.
# TYPE skydns_dns_requests_total counter
skydns_dns_requests_total{proto="tcp",type="A"} 1
skydns_dns_requests_total{proto="udp",type="A"} 3
skydns_dns_requests_total{proto="udp",type="AAAA"} 1
skydns_dns_requests_total{proto="udp",type="SRV"} 1
skydns_dns_requests_total{proto="udp",type="other"} 1
# HELP skydns_dns_responses_total DNS responses sent, by rcode.
# TYPE skydns_dns_responses_total counter
skydns_dns_responses_total{rcode="NOERROR"} 5
skydns_dns_responses_total{rcode="NXDOMAIN"} 2
# HELP skydns_answer_cache_lookups_total Local queries (in the domain, or PTR in the reverse zones) looked up in the packed answers, by result (hit or miss).
# TYPE skydns_answer_cache_lookups_total counter
skydns_answer_cache_lookups_total{result="hit"} 2
skydns_answer_cache_lookups_total{result="miss"} 4
`
	names := []string{"skydns_dns_requests_total", "skydns_dns_responses_total", "skydns_answer_cache_lookups_total"}
	if err := testutil.GatherAndCompare(nonZero{reg}, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	for _, proto := range []struct {
		name string
		want uint64
	}{{"udp", 6}, {"tcp", 1}} {
		var got uint64
		for _, metric := range gather(m.duration) {
			if labelValue(metric, "proto") == proto.name {
				got = metric.GetHistogram().GetSampleCount()
			}
		}
		if got != proto.want {
			t.Errorf("skydns_dns_request_duration_seconds{proto=%q}: %d observed, want %d", proto.name, got, proto.want)
		}
	}
	for _, legacy := range []struct {
		name, label string
		want        float64
	}{{"kube_dns_dns_request_count", "udp", 6}, {"kube_dns_dns_cache_miss_count", "response", 4}} {
		if got := counterValue(t, reg, legacy.name, legacy.label); got != legacy.want {
			t.Errorf("%s{%s} = %v, want %v", legacy.name, legacy.label, got, legacy.want)
		}
	}
}

// nonZero gathers the counters that have counted something.
type nonZero struct{ prometheus.Gatherer }

func (g nonZero) Gather() ([]*dto.MetricFamily, error) {
	families, err := g.Gatherer.Gather()
	for _, f := range families {
		f.Metric = slices.DeleteFunc(f.Metric, func(m *dto.Metric) bool { return m.GetCounter() != nil && m.GetCounter().GetValue() == 0 })
	}
	return families, err
}
