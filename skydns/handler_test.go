package skydns

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skypod/skypod/skydns/msg"
)

// testRecords are the SkyDNS server_test.go scenarios of legacy-behaviour
// §5 (domain skydns.test., TTL 3600, priority 10) plus kube2sky's layout.
var testRecords = map[string]string{
	"100.server1.development.region1.skydns.test.": `{"host":"server1","port":8080}`,
	"101.server2.production.region1.skydns.test.":  `{"host":"server2","port":8080}`,
	"102.server3.production.region2.skydns.test.":  `{"host":"server3","port":8080}`,
	"103.server4.development.region6.skydns.test.": `{"host":"server4","port":80,"priority":333}`,
	"104.server1.development.region1.skydns.test.": `{"host":"10.0.0.1"}`,
	"105.server3.staging.region2.skydns.test.":     `{"host":"2001::8:8:8:8"}`,
	"a.ipaddr.skydns.test.":                        `{"host":"172.16.1.1"}`,
	"b.ipaddr.skydns.test.":                        `{"host":"172.16.1.2"}`,
	"1.backend.in.skydns.test.":                    `{"host":"ipaddr.skydns.test","priority":10}`,
	"ttl.skydns.test.":                             `{"host":"10.0.0.11","ttl":360}`,
	"x.region5.skydns.test.":                       `{"host":"server1","port":80,"weight":130}`,
	"y.region5.skydns.test.":                       `{"host":"server2","port":80,"weight":80}`,
	"z.region5.skydns.test.":                       `{"host":"server3","port":80,"weight":150}`,
	"w.region5.skydns.test.":                       `{"host":"server4","port":80,"priority":30}`,
	"1.cname.skydns.test.":                         `{"host":"2.cname.skydns.test"}`,
	"2.cname.skydns.test.":                         `{"host":"nowhere.skydns.test"}`,
	"3.cname.skydns.test.":                         `{"host":"4.cname.skydns.test"}`,
	"4.cname.skydns.test.":                         `{"host":"3.cname.skydns.test"}`,
	"external.skydns.test.":                        `{"host":"www.example.com"}`,
	"unresolvable.skydns.test.":                    `{"host":"nxdomain.example.com"}`,
	"a.ns.dns.skydns.test.":                        `{"host":"10.0.0.2"}`,
	"b.ns.dns.skydns.test.":                        `{"host":"10.0.0.3"}`,
	"a1.txt.skydns.test.":                          `{"text":"abc"}`,
	"a2.txt.skydns.test.":                          `{"text":"abc abc"}`,
	"b.mail.skydns.test.":                          `{"host":"mx.miek.nl","priority":50,"mail":true}`,
	"x.bar.skydns.test.":                           `{"host":"192.168.0.1","port":80,"targetstrip":1}`,
	"y.bar.skydns.test.":                           `{"host":"bar.skydns.local","port":443}`,
	"a.two.skydns.test.":                           `{"host":"10.0.0.20","port":80}`,
	"b.two.skydns.test.":                           `{"host":"10.0.0.20","port":8080}`,
	"g1.group.skydns.test.":                        `{"host":"127.0.0.1","group":"g1"}`,
	"b.g1.group.skydns.test.":                      `{"host":"127.0.0.2","group":"g1"}`,
	"g2.group2.skydns.test.":                       `{"host":"127.0.0.3","group":"g1"}`,
	"b.g2.group2.skydns.test.":                     `{"host":"127.0.0.4","group":"g2"}`,
	"g3.group3.skydns.test.":                       `{"host":"127.0.0.5","group":"g1"}`,
	"b.g3.group3.skydns.test.":                     `{"host":"127.0.0.6"}`,
	"1.0.0.10.in-addr.arpa.":                       `{"host":"reverse.example.com"}`,
	"a.dedup.skydns.test.":                         `{"host":"10.0.0.30"}`,
	"b.dedup.skydns.test.":                         `{"host":"10.0.0.30"}`,
	"c.dedup.skydns.test.":                         `{"host":"10.0.0.31"}`,
	"d.dedup.skydns.test.":                         `{"host":"10.0.0.31"}`,
	"local.skydns.test.":                           `{"host":"10.0.0.40"}`,
	"ext1.cname2.skydns.test.":                     `{"host":"www.miek.nl"}`,
	"ext2.cname2.skydns.test.":                     `{"host":"www.miek.nl"}`,
	"a.mxgroup.skydns.test.":                       `{"host":"10.0.0.61","mail":true,"group":"g1"}`,
	"b.x.mxgroup.skydns.test.":                     `{"host":"10.0.0.62","mail":true,"group":"g2"}`,
	// kube2sky's worked example (legacy-behaviour §2.7).
	"b882ad2c.testservice.default.svc.skydns.test.":             `{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}`,
	"b882ad2c._http1._tcp.testservice.default.svc.skydns.test.": `{"host":"testservice.default.svc.skydns.test.","port":80,"priority":10,"weight":10,"ttl":30}`,
	"1a2b3c4d.hl.default.svc.skydns.test.":                      `{"host":"10.0.1.1","priority":10,"weight":10,"ttl":30}`,
	"5e6f7a8b.hl.default.svc.skydns.test.":                      `{"host":"10.0.1.2","priority":10,"weight":10,"ttl":30}`,
	"1a2b3c4d._http._tcp.hl.default.svc.skydns.test.":           `{"host":"1a2b3c4d.hl.default.svc.skydns.test.","port":80,"priority":10,"weight":10,"ttl":30}`,
	"5e6f7a8b._http._tcp.hl.default.svc.skydns.test.":           `{"host":"5e6f7a8b.hl.default.svc.skydns.test.","port":80,"priority":10,"weight":10,"ttl":30}`,
	"b882ad2c.1-2-3-4.default.pod.skydns.test.":                 `{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}`,
	"v6.svc6.default.svc.skydns.test.":                          `{"host":"2001:db8::1","ttl":30}`,
	"long.skydns.test.":                                         `{"text":"` + strings.Repeat("x", 300) + `"}`,
}

// placeholderUpstream is the nameserver of the test configuration; the
// fakeUpstream answers for it, so nothing is sent there.
const placeholderUpstream = "127.0.0.1:1"

// fakeUpstream is an upstream that knows a few names: asked at the
// placeholder address it answers them, and NXDOMAIN for the rest; queries
// to any other address go to the real servers there (the tests' own, on
// loopback).
type fakeUpstream struct {
	known map[string][]dns.RR
	rest  Exchanger
}

func (f fakeUpstream) Exchange(ctx context.Context, req *dns.Msg, network, addr string) (*dns.Msg, error) {
	q := req.Question[0]
	rrs, ok := f.known[strings.ToLower(q.Name)]
	if !ok && addr != placeholderUpstream {
		return f.rest.Exchange(ctx, req, network, addr)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
			m.Answer = append(m.Answer, rr)
		}
	}
	if len(m.Answer) == 0 {
		m.Rcode = dns.RcodeNameError
	}
	return m, nil
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("bad RR %q: %v", s, err)
	}
	return rr
}

func newTestConfig() *Config {
	cfg := NewConfig(func(string) string { return "" })
	cfg.Domain = "skydns.test."
	cfg.Nameservers = []string{placeholderUpstream} // Never dialled: see fakeUpstream.
	cfg.RoundRobin = false
	cfg.Local = "local.skydns.test."
	if err := cfg.Finish(); err != nil {
		panic(err)
	}
	return cfg
}

func loadIndex(t testing.TB, records map[string]string) *Index {
	t.Helper()
	return fillIndex(t, NewIndex("skydns"), records)
}

// fillIndex makes ix hold records, as a list would.
func fillIndex(t testing.TB, ix *Index, records map[string]string) *Index {
	t.Helper()
	var sx []msg.Service
	for name, value := range records {
		s, err := msg.Unmarshal(msg.Path(name, "skydns"), []byte(value))
		if err != nil {
			t.Fatal(err)
		}
		sx = append(sx, s)
	}
	ix.Replace(sx)
	return ix
}

// testClock is the time every test handler starts with.
func testClock() time.Time { return time.Unix(1700000000, 0) }

// newTestHandler builds the handler from cfg as Run would, with a fixed
// clock and an upstream that knows two names; with may change its Deps.
func newTestHandler(t testing.TB, cfg *Config, ix *Index, with ...func(*Deps)) *Handler {
	t.Helper()
	opts, err := cfg.Load(nil, func(string) (*dns.ClientConfig, error) { return nil, os.ErrNotExist })
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{
		Index: ix, Metrics: NewMetrics(prometheus.NewRegistry(), ix), Log: slog.New(slog.DiscardHandler),
		Clock: testClock,
		Exchange: fakeUpstream{rest: newNetExchanger(opts.Forward.Timeout), known: map[string][]dns.RR{
			"www.example.com.": {mustRR(t, "www.example.com. 300 IN A 93.184.216.34")},
			"mx.miek.nl.":      {mustRR(t, "mx.miek.nl. 300 IN A 176.58.119.54")},
			"www.miek.nl.": {
				mustRR(t, "www.miek.nl. 300 IN CNAME a.miek.nl."),
				mustRR(t, "a.miek.nl. 300 IN A 139.162.196.78"),
				mustRR(t, "a.miek.nl. 300 IN AAAA 2a01:7e00::f03c:91ff:fef1:6735"),
			},
		}},
	}
	for _, f := range with {
		f(&deps)
	}
	return NewHandler(opts, deps)
}

// ask runs req through ServeDNS as a client over proto ("udp" or
// "tcp") would send it, and returns the reply; nil when it was dropped.
func ask(t testing.TB, h *Handler, req *dns.Msg, proto string) *dns.Msg {
	t.Helper()
	w := &packingWriter{tcp: proto == "tcp"}
	h.ServeDNS(w, req)
	if w.buf == nil {
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(w.buf); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return m
}

type dnsCase struct {
	qname  string
	qtype  uint16
	rcode  int
	answer []string
	ns     []string
	extra  []string
}

// sortedStrings renders RRs as zone-file lines, sorted, for comparison.
func sortedStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}

func normalised(t testing.TB, lines []string) []string {
	t.Helper()
	rrs := make([]dns.RR, len(lines))
	for i, l := range lines {
		rrs[i] = mustRR(t, l)
	}
	return sortedStrings(rrs)
}

func checkReply(t *testing.T, tc dnsCase, m *dns.Msg) {
	t.Helper()
	if m.Rcode != tc.rcode {
		t.Fatalf("rcode = %s, want %s\n%v", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode], m)
	}
	for _, sec := range []struct {
		name      string
		got, want []string
	}{
		{"answer", sortedStrings(m.Answer), normalised(t, tc.answer)},
		{"authority", sortedStrings(m.Ns), normalised(t, tc.ns)},
		{"additional", sortedStrings(m.Extra), normalised(t, tc.extra)},
	} {
		if !slices.Equal(sec.got, sec.want) {
			t.Errorf("%s:\n got  %q\n want %q", sec.name, sec.got, sec.want)
		}
	}
}

const testSOA = "skydns.test. 60 IN SOA ns.dns.skydns.test. hostmaster.skydns.local. 1699999200 28800 7200 604800 60"

func TestLookupSemantics(t *testing.T) {
	cfg := newTestConfig()
	h := newTestHandler(t, cfg, loadIndex(t, testRecords))
	tests := []dnsCase{
		// Leaves and names as hosts.
		{qname: "100.server1.development.region1.skydns.test.", qtype: dns.TypeSRV,
			answer: []string{"100.server1.development.region1.skydns.test. 3600 SRV 10 100 8080 server1."}},
		{qname: "100.server1.development.region1.skydns.test.", qtype: dns.TypeA, ns: []string{testSOA}},
		{qname: "100.server1.development.region1.skydns.test.", qtype: dns.TypeMX, ns: []string{testSOA}},
		{qname: "104.server1.development.region1.skydns.test.", qtype: dns.TypeA,
			answer: []string{"104.server1.development.region1.skydns.test. 3600 A 10.0.0.1"}},
		{qname: "104.server1.development.region1.skydns.test.", qtype: dns.TypeSRV,
			answer: []string{"104.server1.development.region1.skydns.test. 3600 SRV 10 100 0 104.server1.development.region1.skydns.test."},
			extra:  []string{"104.server1.development.region1.skydns.test. 3600 A 10.0.0.1"}},
		{qname: "104.server1.development.region1.skydns.test.", qtype: dns.TypeTXT, ns: []string{testSOA}},
		{qname: "105.server3.staging.region2.skydns.test.", qtype: dns.TypeAAAA,
			answer: []string{"105.server3.staging.region2.skydns.test. 3600 AAAA 2001::8:8:8:8"}},
		// A directory answers every record below it.
		{qname: "ipaddr.skydns.test.", qtype: dns.TypeA,
			answer: []string{"ipaddr.skydns.test. 3600 A 172.16.1.1", "ipaddr.skydns.test. 3600 A 172.16.1.2"}},
		{qname: "1.backend.in.skydns.test.", qtype: dns.TypeA, answer: []string{
			"1.backend.in.skydns.test. 3600 CNAME ipaddr.skydns.test.",
			"ipaddr.skydns.test. 3600 A 172.16.1.1", "ipaddr.skydns.test. 3600 A 172.16.1.2"}},
		{qname: "backend.in.skydns.test.", qtype: dns.TypeA, answer: []string{
			"backend.in.skydns.test. 3600 CNAME ipaddr.skydns.test.",
			"ipaddr.skydns.test. 3600 A 172.16.1.1", "ipaddr.skydns.test. 3600 A 172.16.1.2"}},
		// SRV weights per priority, and wildcards.
		{qname: "region1.skydns.test.", qtype: dns.TypeSRV, answer: []string{
			"region1.skydns.test. 3600 SRV 10 33 8080 server1.",
			"region1.skydns.test. 3600 SRV 10 33 8080 server2.",
			"region1.skydns.test. 3600 SRV 10 33 0 104.server1.development.region1.skydns.test."},
			extra: []string{"104.server1.development.region1.skydns.test. 3600 A 10.0.0.1"}},
		{qname: "*.region1.skydns.test.", qtype: dns.TypeSRV, answer: []string{
			"*.region1.skydns.test. 3600 SRV 10 33 8080 server1.",
			"*.region1.skydns.test. 3600 SRV 10 33 8080 server2.",
			"*.region1.skydns.test. 3600 SRV 10 33 0 104.server1.development.region1.skydns.test."},
			extra: []string{"104.server1.development.region1.skydns.test. 3600 A 10.0.0.1"}},
		{qname: "production.*.skydns.test.", qtype: dns.TypeSRV, answer: []string{
			"production.*.skydns.test. 3600 SRV 10 50 8080 server2.",
			"production.*.skydns.test. 3600 SRV 10 50 8080 server3."}},
		{qname: "production.any.skydns.test.", qtype: dns.TypeSRV, answer: []string{
			"production.any.skydns.test. 3600 SRV 10 50 8080 server2.",
			"production.any.skydns.test. 3600 SRV 10 50 8080 server3."}},
		{qname: "region5.skydns.test.", qtype: dns.TypeSRV, answer: []string{
			"region5.skydns.test. 3600 SRV 10 36 80 server1.",
			"region5.skydns.test. 3600 SRV 10 22 80 server2.",
			"region5.skydns.test. 3600 SRV 10 41 80 server3.",
			"region5.skydns.test. 3600 SRV 30 100 80 server4."}},
		{qname: "region6.skydns.test.", qtype: dns.TypeSRV,
			answer: []string{"region6.skydns.test. 3600 SRV 333 100 80 server4."}},
		{qname: "ttl.skydns.test.", qtype: dns.TypeA, answer: []string{"ttl.skydns.test. 360 A 10.0.0.11"}},
		// CNAME chasing: dead ends, loops, and targets outside the zone.
		{qname: "1.cname.skydns.test.", qtype: dns.TypeA, ns: []string{testSOA}},
		{qname: "3.cname.skydns.test.", qtype: dns.TypeA, ns: []string{testSOA}},
		{qname: "external.skydns.test.", qtype: dns.TypeA, answer: []string{
			"external.skydns.test. 60 CNAME www.example.com.", "www.example.com. 60 A 93.184.216.34"}},
		{qname: "unresolvable.skydns.test.", qtype: dns.TypeA, ns: []string{testSOA}},
		{qname: "1.cname.skydns.test.", qtype: dns.TypeCNAME,
			answer: []string{"1.cname.skydns.test. 3600 CNAME 2.cname.skydns.test."}},
		{qname: "cname.skydns.test.", qtype: dns.TypeCNAME, ns: []string{testSOA}},
		// Negative answers, apex records.
		{qname: "doesnotexist.skydns.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		{qname: "doesnotexist.skydns.test.", qtype: dns.TypeNAPTR, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		{qname: "skydns.test.", qtype: dns.TypeNS,
			answer: []string{"skydns.test. 3600 NS a.ns.dns.skydns.test.", "skydns.test. 3600 NS b.ns.dns.skydns.test."},
			extra:  []string{"a.ns.dns.skydns.test. 3600 A 10.0.0.2", "b.ns.dns.skydns.test. 3600 A 10.0.0.3"}},
		{qname: "skydns.test.", qtype: dns.TypeSOA,
			answer: []string{"skydns.test. 3600 SOA ns.dns.skydns.test. hostmaster.skydns.local. 1699999200 28800 7200 604800 60"}},
		// TXT, PTR, MX, -local.
		{qname: "a1.txt.skydns.test.", qtype: dns.TypeTXT, answer: []string{`a1.txt.skydns.test. 3600 TXT "abc"`}},
		{qname: "txt.skydns.test.", qtype: dns.TypeTXT,
			answer: []string{`txt.skydns.test. 3600 TXT "abc"`, `txt.skydns.test. 3600 TXT "abc abc"`}},
		{qname: "long.skydns.test.", qtype: dns.TypeTXT,
			answer: []string{`long.skydns.test. 3600 TXT "` + strings.Repeat("x", 255) + `" "` + strings.Repeat("x", 45) + `"`}},
		{qname: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, answer: []string{"1.0.0.10.in-addr.arpa. 3600 PTR reverse.example.com."}},
		{qname: "b.mail.skydns.test.", qtype: dns.TypeMX, answer: []string{"b.mail.skydns.test. 3600 MX 50 mx.miek.nl."},
			extra: []string{"mx.miek.nl. 60 A 176.58.119.54"}},
		// MX reads records as every other type does: groups apply.
		{qname: "mxgroup.skydns.test.", qtype: dns.TypeMX, answer: []string{"mxgroup.skydns.test. 3600 MX 10 a.mxgroup.skydns.test."},
			extra: []string{"a.mxgroup.skydns.test. 3600 A 10.0.0.61"}},
		{qname: "mxgroup.skydns.test.", qtype: dns.TypeA, answer: []string{"mxgroup.skydns.test. 3600 A 10.0.0.61"}},
		// An SRV target outside the zone: upstream's whole A answer, its
		// CNAME included, and the AAAA records of its AAAA answer go in the
		// additional section (SkyDNS's own "*.cname2" case).
		{qname: "*.cname2.skydns.test.", qtype: dns.TypeSRV, answer: []string{"*.cname2.skydns.test. 3600 SRV 10 100 0 www.miek.nl."},
			extra: []string{"www.miek.nl. 60 CNAME a.miek.nl.", "a.miek.nl. 60 A 139.162.196.78", "a.miek.nl. 60 AAAA 2a01:7e00::f03c:91ff:fef1:6735"}},
		{qname: "local.dns.skydns.test.", qtype: dns.TypeA, answer: []string{"local.dns.skydns.test. 3600 A 10.0.0.40"}},
		// targetstrip; the same IP on two ports is one A; groups; dedup.
		{qname: "bar.skydns.test.", qtype: dns.TypeA, answer: []string{"bar.skydns.test. 3600 A 192.168.0.1"}},
		{qname: "bar.skydns.test.", qtype: dns.TypeSRV,
			answer: []string{"bar.skydns.test. 3600 SRV 10 50 443 bar.skydns.local.", "bar.skydns.test. 3600 SRV 10 50 80 bar.skydns.test."},
			extra:  []string{"bar.skydns.test. 3600 A 192.168.0.1"}},
		{qname: "two.skydns.test.", qtype: dns.TypeA, answer: []string{"two.skydns.test. 3600 A 10.0.0.20"}},
		{qname: "group.skydns.test.", qtype: dns.TypeA,
			answer: []string{"group.skydns.test. 3600 A 127.0.0.1", "group.skydns.test. 3600 A 127.0.0.2"}},
		{qname: "group2.skydns.test.", qtype: dns.TypeA, answer: []string{"group2.skydns.test. 3600 A 127.0.0.3"}},
		{qname: "group3.skydns.test.", qtype: dns.TypeA,
			answer: []string{"group3.skydns.test. 3600 A 127.0.0.5", "group3.skydns.test. 3600 A 127.0.0.6"}},
		{qname: "dedup.skydns.test.", qtype: dns.TypeA,
			answer: []string{"dedup.skydns.test. 3600 A 10.0.0.30", "dedup.skydns.test. 3600 A 10.0.0.31"}},
		// The worked example of legacy-behaviour §2.7 (kube2sky's layout).
		{qname: "testservice.default.svc.skydns.test.", qtype: dns.TypeA,
			answer: []string{"testservice.default.svc.skydns.test. 30 A 1.2.3.4"}},
		{qname: "_http1._tcp.testservice.default.svc.skydns.test.", qtype: dns.TypeSRV,
			answer: []string{"_http1._tcp.testservice.default.svc.skydns.test. 30 SRV 10 100 80 testservice.default.svc.skydns.test."},
			extra:  []string{"testservice.default.svc.skydns.test. 30 A 1.2.3.4"}},
		{qname: "testservice.default.svc.skydns.test.", qtype: dns.TypeSRV,
			answer: []string{"testservice.default.svc.skydns.test. 30 SRV 10 100 0 b882ad2c.testservice.default.svc.skydns.test."},
			extra:  []string{"b882ad2c.testservice.default.svc.skydns.test. 30 A 1.2.3.4"}},
		{qname: "testservice.default.svc.skydns.test.", qtype: dns.TypeAAAA, ns: []string{testSOA}},
		{qname: "testservice.default.svc.skydns.test.", qtype: dns.TypeTXT, ns: []string{testSOA}},
		{qname: "testservice.default.svc.skydns.test.", qtype: dns.TypeMX, ns: []string{testSOA}},
		{qname: "1-2-3-4.default.pod.skydns.test.", qtype: dns.TypeA,
			answer: []string{"1-2-3-4.default.pod.skydns.test. 30 A 1.2.3.4"}},
		{qname: "hl.default.svc.skydns.test.", qtype: dns.TypeA,
			answer: []string{"hl.default.svc.skydns.test. 30 A 10.0.1.1", "hl.default.svc.skydns.test. 30 A 10.0.1.2"}},
		{qname: "_http._tcp.hl.default.svc.skydns.test.", qtype: dns.TypeSRV,
			answer: []string{"_http._tcp.hl.default.svc.skydns.test. 30 SRV 10 50 80 1a2b3c4d.hl.default.svc.skydns.test.",
				"_http._tcp.hl.default.svc.skydns.test. 30 SRV 10 50 80 5e6f7a8b.hl.default.svc.skydns.test."},
			extra: []string{"1a2b3c4d.hl.default.svc.skydns.test. 30 A 10.0.1.1", "5e6f7a8b.hl.default.svc.skydns.test. 30 A 10.0.1.2"}},
		{qname: "_tcp.hl.default.svc.skydns.test.", qtype: dns.TypeSRV, ns: []string{testSOA}},
		{qname: "svc6.default.svc.skydns.test.", qtype: dns.TypeAAAA, answer: []string{"svc6.default.svc.skydns.test. 30 AAAA 2001:db8::1"}},
		{qname: "unknown.default.svc.skydns.test.", qtype: dns.TypeA, rcode: dns.RcodeNameError, ns: []string{testSOA}},
		// The query's letter case is kept.
		{qname: "TestService.Default.SVC.skydns.test.", qtype: dns.TypeA,
			answer: []string{"TestService.Default.SVC.skydns.test. 30 A 1.2.3.4"}},
		// Qtype ANY is refused.
		{qname: "testservice.default.svc.skydns.test.", qtype: dns.TypeANY, rcode: dns.RcodeRefused},
	}
	for _, tc := range tests {
		t.Run(tc.qname+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			req := new(dns.Msg)
			req.SetQuestion(tc.qname, tc.qtype)
			checkReply(t, tc, ask(t, h, req, "udp"))
		})
	}
}

func TestNotLoadedIsServfail(t *testing.T) {
	cfg := newTestConfig()
	h := newTestHandler(t, cfg, NewIndex("skydns"))
	for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV, dns.TypeTXT, dns.TypeAAAA, dns.TypeMX, dns.TypeCNAME} {
		req := new(dns.Msg)
		req.SetQuestion("anything.skydns.test.", qtype)
		if m := ask(t, h, req, "udp"); m.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s before the first load: rcode %s, want SERVFAIL", dns.TypeToString[qtype], dns.RcodeToString[m.Rcode])
		}
	}
}

func TestChaos(t *testing.T) {
	h := newTestHandler(t, newTestConfig(), loadIndex(t, testRecords))
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		count int
	}{
		{"version.bind.", dns.TypeTXT, dns.RcodeSuccess, 1},
		{"authors.bind.", dns.TypeTXT, dns.RcodeSuccess, 4},
		{"hostname.bind.", dns.TypeTXT, dns.RcodeSuccess, 1},
		{"other.bind.", dns.TypeTXT, dns.RcodeServerFailure, 0},
		{"version.bind.", dns.TypeA, dns.RcodeServerFailure, 0},
	}
	for _, tc := range tests {
		req := new(dns.Msg)
		req.SetQuestion(tc.name, tc.qtype)
		req.Question[0].Qclass = dns.ClassCHAOS
		m := ask(t, h, req, "udp")
		if m.Rcode != tc.rcode || len(m.Answer) != tc.count {
			t.Errorf("%s %s: rcode %s, %d answers", tc.name, dns.TypeToString[tc.qtype], dns.RcodeToString[m.Rcode], len(m.Answer))
		}
	}
}

// Answers larger than the client's buffer: extra records go quietly, then
// answers with TC over UDP; TCP gets everything.
func TestTruncation(t *testing.T) {
	records := map[string]string{}
	for i := 0; i < 60; i++ {
		records[fmt.Sprintf("%d.big.skydns.test.", i)] = fmt.Sprintf(`{"host":"10.1.0.%d","port":80}`, i)
	}
	ix := loadIndex(t, records)
	tests := []struct {
		name     string
		maxUDP   int // --max-udp-size; 0: the default.
		proto    string
		qtype    uint16
		edns     uint16
		tc       bool
		answers  int
		maxBytes int
		capped   float64 // skydns_dns_udp_capped_total after the reply.
	}{
		{"udp A over 512", 0, "udp", dns.TypeA, 0, true, -1, 512, 0},
		{"udp A with edns 4096", 0, "udp", dns.TypeA, 4096, false, 60, 4096, 0},
		{"tcp A", 0, "tcp", dns.TypeA, 0, false, 60, dns.MaxMsgSize, 0},
		{"udp SRV drops extra before answers", 4096, "udp", dns.TypeSRV, 2600, false, 60, 2600, 0},
		// The ceiling holds whatever the client advertises.
		{"udp SRV with edns 2600 at the default ceiling", 0, "udp", dns.TypeSRV, 2600, true, -1, 1232, 1},
		{"udp SRV with edns 65535 at the default ceiling", 0, "udp", dns.TypeSRV, 65535, true, -1, 1232, 1},
		{"udp SRV with edns 65535 at a 600-byte ceiling", 600, "udp", dns.TypeSRV, 65535, true, -1, 600, 1},
		{"tcp SRV is not capped", 0, "tcp", dns.TypeSRV, 65535, false, 60, dns.MaxMsgSize, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newTestConfig()
			if tc.maxUDP > 0 {
				cfg.MaxUDPSize = tc.maxUDP
			}
			h := newTestHandler(t, cfg, ix)
			req := new(dns.Msg)
			req.SetQuestion("big.skydns.test.", tc.qtype)
			if tc.edns > 0 {
				req.SetEdns0(tc.edns, false)
			}
			wire := serve(t, h, req, tc.proto == "tcp")
			m := unpack(t, wire)
			if m.Truncated != tc.tc {
				t.Fatalf("TC = %v, want %v", m.Truncated, tc.tc)
			}
			if tc.answers >= 0 && len(m.Answer) != tc.answers {
				t.Fatalf("%d answers, want %d", len(m.Answer), tc.answers)
			}
			if tc.tc && (len(m.Answer) == 0 || len(m.Answer) >= 60) {
				t.Fatalf("truncated reply should keep what fits, has %d", len(m.Answer))
			}
			if len(wire) > tc.maxBytes {
				t.Fatalf("reply is %d bytes, limit %d", len(wire), tc.maxBytes)
			}
			if got := testutilCounter(h.metrics.udpCapped); got != tc.capped {
				t.Fatalf("skydns_dns_udp_capped_total = %v, want %v", got, tc.capped)
			}
		})
	}
}

func TestMinimumTTLAcrossAnswer(t *testing.T) {
	h := newTestHandler(t, newTestConfig(), loadIndex(t, map[string]string{
		"a.mixed.skydns.test.": `{"host":"10.2.0.1","ttl":30}`,
		"b.mixed.skydns.test.": `{"host":"10.2.0.2","ttl":300}`,
	}))
	req := new(dns.Msg)
	req.SetQuestion("mixed.skydns.test.", dns.TypeA)
	m := ask(t, h, req, "udp")
	if len(m.Answer) != 2 {
		t.Fatalf("%d answers, want both records: %v", len(m.Answer), m)
	}
	for _, rr := range m.Answer {
		if rr.Header().Ttl != 30 {
			t.Fatalf("TTL %d, want the minimum 30: %v", rr.Header().Ttl, rr)
		}
	}
}
