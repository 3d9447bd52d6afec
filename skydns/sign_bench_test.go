package skydns

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeSigned is BenchmarkServeA's names and its search-list
// misses asked with DO of a zone signed with -dnssec, per algorithm:
// "a-packed" as served by default (signed once, then packed); "a-built"
// with --answer-cache=0, each reply built and signed from a warm
// signature cache; "nxdomain-packed" and "nxdomain-built" the same for a
// search-list miss (SOA and three NSEC3 records, each signed);
// "nxdomain-fresh" a name never asked before each time, as a random-name
// flood would send, whose next closer name needs a new signature.
func BenchmarkServeSigned(b *testing.B) {
	ix := loadIndex(b, benchRecords())
	svc := func(i int) string { return fmt.Sprintf("svc-%d.ns-%d.svc.skydns.test.", i%1000*7, i%1000*7/5000) }
	search := func(i int) string { return svc(i) + fmt.Sprintf("ns-%d.svc.skydns.test.", i%1000*7/5000) }
	fresh := func(i int) string { return fmt.Sprintf("x%d.", i) + svc(i) }
	cases := []struct {
		name        string
		answerCache int
		qname       func(i int) string
	}{
		{"a-packed", defaultAnswerCache, svc}, {"a-built", 0, svc},
		{"nxdomain-packed", defaultAnswerCache, search}, {"nxdomain-built", 0, search},
		{"nxdomain-fresh", defaultAnswerCache, fresh},
	}
	for _, alg := range []uint8{dns.ECDSAP256SHA256, dns.RSASHA256} {
		for _, bc := range cases {
			b.Run(dns.AlgorithmToString[alg]+"/"+bc.name, func(b *testing.B) {
				h, _ := signedHandler(b, alg, ix, func(c *Config) { c.AnswerCache = bc.answerCache })
				w := &packingWriter{}
				for i := range 1000 { // Warm: every name signed once.
					h.ServeDNS(w, doQuestion(bc.qname(i), dns.TypeA, 1))
				}
				reqs := make([]*dns.Msg, 1000)
				for i := range reqs {
					reqs[i] = doQuestion(bc.qname(i), dns.TypeA, 1)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					req := reqs[i%len(reqs)]
					if bc.name == "nxdomain-fresh" {
						req = doQuestion(fresh(1000+i), dns.TypeA, 1)
					}
					h.ServeDNS(w, req)
				}
				b.ReportMetric(float64(len(w.buf)), "bytes/reply")
			})
		}
	}
}
