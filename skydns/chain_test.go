package skydns

import (
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The checks step answers malformed and unwanted requests before any
// other step sees them.
func TestCheckStep(t *testing.T) {
	stubCfg := newTestConfig()
	stubCfg.StubZones = true
	looped := func(qtype uint16) *dns.Msg {
		m := question("testservice.default.svc.skydns.test.", qtype, 9).SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: stubLoopOption, Data: []byte{1}})
		return m
	}
	tests := []struct {
		name    string
		cfg     *Config
		req     *dns.Msg
		dropped bool
		rcode   int
		rd      bool // Echoed only in replies to QUERY.
	}{
		{"no question", newTestConfig(), &dns.Msg{MsgHdr: dns.MsgHdr{Id: 3, RecursionDesired: true}}, false, dns.RcodeFormatError, true},
		{"two questions", newTestConfig(), func() *dns.Msg {
			m := question("a.skydns.test.", dns.TypeA, 4)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(), false, dns.RcodeFormatError, true},
		{"ANY is refused, recursion not echoed", newTestConfig(), question("testservice.default.svc.skydns.test.", dns.TypeANY, 5), false, dns.RcodeRefused, false},
		{"NOTIFY is not a query", newTestConfig(), withOpcode(question("testservice.default.svc.skydns.test.", dns.TypeSOA, 6), dns.OpcodeNotify), false, dns.RcodeNotImplemented, false},
		{"nor is UPDATE", newTestConfig(), withOpcode(question("skydns.test.", dns.TypeSOA, 7), dns.OpcodeUpdate), false, dns.RcodeNotImplemented, false},
		{"out-of-zone NOTIFY is not forwarded", newTestConfig(), withOpcode(question("www.example.org.", dns.TypeA, 8), dns.OpcodeNotify), false, dns.RcodeNotImplemented, false},
		{"AXFR is refused", newTestConfig(), question("skydns.test.", dns.TypeAXFR, 9), false, dns.RcodeRefused, false},
		{"IXFR is refused", newTestConfig(), question("skydns.test.", dns.TypeIXFR, 10), false, dns.RcodeRefused, false},
		{"class HS is refused", newTestConfig(), withClass(question("testservice.default.svc.skydns.test.", dns.TypeA, 11), dns.ClassHESIOD), false, dns.RcodeRefused, false},
		{"class ANY is refused", newTestConfig(), withClass(question("testservice.default.svc.skydns.test.", dns.TypeA, 12), dns.ClassANY), false, dns.RcodeRefused, false},
		{"class IN passes", newTestConfig(), question("testservice.default.svc.skydns.test.", dns.TypeA, 13), false, dns.RcodeSuccess, true},
		{"class CHAOS passes", newTestConfig(), withClass(question("version.bind.", dns.TypeTXT, 14), dns.ClassCHAOS), false, dns.RcodeSuccess, true},
		{"a looped stub query is dropped", stubCfg, looped(dns.TypeA), true, 0, false},
		{"a looped ANY query is dropped, not refused", stubCfg, looped(dns.TypeANY), true, 0, false},
		{"the same query without -stubzones is answered", newTestConfig(), looped(dns.TypeA), false, dns.RcodeSuccess, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler(t, tc.cfg, loadIndex(t, testRecords))
			dropped := testutilCounter(h.metrics.dropped)
			m := ask(t, h, tc.req, "udp")
			if tc.dropped {
				if m != nil || testutilCounter(h.metrics.dropped) != dropped+1 {
					t.Fatalf("want a counted drop, got %v", m)
				}
				return
			}
			if m == nil {
				t.Fatal("no reply")
			}
			if m.Rcode != tc.rcode || m.Id != tc.req.Id || m.RecursionDesired != tc.rd {
				t.Fatalf("rcode %s id %d rd %v, want %s %d %v", dns.RcodeToString[m.Rcode], m.Id, m.RecursionDesired,
					dns.RcodeToString[tc.rcode], tc.req.Id, tc.rd)
			}
		})
	}
}

// The steps run in the documented order: a stub zone inside the cluster
// domain wins over the records, CHAOS class never reaches the records, and
// reply shaping applies to what the zone built, and only fitting to
// forwarded replies.
func TestChainOrder(t *testing.T) {
	stub, stubCount := startUpstream(t, "198.51.100.9")
	up, upCount := startUpstream(t, "192.0.2.9")
	host, port, _ := net.SplitHostPort(stub)
	records := map[string]string{
		"ns1.sub.skydns.test.stub.dns.skydns.test.": `{"host":"` + host + `","port":` + port + `}`,
		"x.sub.skydns.test.":                        `{"host":"10.0.0.99"}`,
		"version.bind.skydns.test.":                 `{"host":"10.0.0.98"}`,
	}
	cfg := newTestConfig()
	cfg.StubZones = true
	cfg.Nameservers = []string{up}
	h := newTestHandler(t, cfg, loadIndex(t, records))

	m := query(t, h, "x.sub.skydns.test.", dns.TypeA)
	if stubCount.Load() != 1 || len(m.Answer) == 0 || !strings.Contains(m.Answer[len(m.Answer)-1].String(), "198.51.100.9") {
		t.Fatalf("a name in a stub zone inside the domain went to the records: %v", m.Answer)
	}
	// A CHAOS-class query for a name in the stub zone is the CHAOS step's.
	if m := ask(t, h, chaos(question("x.sub.skydns.test.", dns.TypeTXT, 5)), "udp"); m.Rcode != dns.RcodeServerFailure || stubCount.Load() != 1 {
		t.Fatalf("CHAOS query in a stub zone: %v, stub queried %d times", m, stubCount.Load())
	}
	req := chaos(question("version.bind.", dns.TypeTXT, 2))
	if m := ask(t, h, req, "udp"); len(m.Answer) != 1 || m.Answer[0].(*dns.TXT).Txt[0] != legacyVersion {
		t.Fatalf("CHAOS version.bind: %v", m)
	}
	// A forwarded reply is fitted to the client, not shaped: the client's
	// EDNS is echoed, the one answer left as it came.
	fwd := question("www.example.org.", dns.TypeA, 3).SetEdns0(1232, false)
	if m := ask(t, h, fwd, "udp"); upCount.Load() != 1 || m.IsEdns0() == nil || len(m.Answer) != 1 {
		t.Fatalf("forwarded reply not fitted: %v", m)
	}
	// An in-zone reply to the same kind of request is fitted: it echoes EDNS.
	zone := question("version.bind.skydns.test.", dns.TypeA, 4).SetEdns0(1232, false)
	if m := ask(t, h, zone, "udp"); m.IsEdns0() == nil || m.IsEdns0().UDPSize() != 1232 {
		t.Fatalf("zone reply not shaped: %v", m)
	}
}

func withOpcode(m *dns.Msg, opcode int) *dns.Msg {
	m.Opcode = opcode
	return m
}

func withClass(m *dns.Msg, class uint16) *dns.Msg {
	m.Question[0].Qclass = class
	return m
}

// A reply's start (setReply) is what miekg/dns's SetReply makes, the
// request's own reply and later ones alike, with a question of its own:
// changing the reply's question leaves the request's as it was.
func TestSetReplyIsMiekgs(t *testing.T) {
	notify := new(dns.Msg).SetNotify("skydns.test.")
	query := new(dns.Msg).SetQuestion("web.default.svc.skydns.test.", dns.TypeSRV)
	query.CheckingDisabled, query.Id = true, 4242
	cases := map[string]*dns.Msg{"query": query, "notify": notify, "no question": {MsgHdr: dns.MsgHdr{Id: 7, RecursionDesired: true}}}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			want := new(dns.Msg).SetReply(msg)
			var req request
			req.reset(msg, false, testClock())
			for _, which := range []string{"own", "later"} {
				got := req.newReply()
				req.setReply(got)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s reply: %+v, want %+v", which, got, want)
				}
				if len(got.Question) > 0 {
					got.Question[0].Name = "changed."
					if msg.Question[0].Name == "changed." {
						t.Errorf("%s reply: its question is the request's", which)
					}
				}
			}
		})
	}
}
