package skydns

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/skydns/msg"
)

// overBudget is how many queries passed each limit, and in all.
func overBudget(h *Handler) (map[string]float64, float64) {
	by, total := map[string]float64{}, 0.0
	for _, limit := range []string{limitLookups, limitNodes, limitChases, limitUpstream} {
		by[limit] = testutilCounter(h.metrics.overBudgetBy.WithLabelValues(limit))
		total += by[limit]
	}
	return by, total
}

// numbered is n records named fmt.Sprintf(nameFormat, i), each valued
// value(i).
func numbered(n int, nameFormat string, value func(i int) string) map[string]string {
	records := make(map[string]string, n)
	for i := range n {
		records[fmt.Sprintf(nameFormat, i)] = value(i)
	}
	return records
}

func address(i int) string { return fmt.Sprintf(`{"host":"10.%d.%d.%d"}`, i>>16&255, i>>8&255, i&255) }

func merged(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, set := range sets {
		for k, v := range set {
			out[k] = v
		}
	}
	return out
}

// One query, however the records are shaped, costs bounded work: past a
// limit it is SERVFAIL, counted by the limit it passed.
func TestBudgetBoundsOneQuery(t *testing.T) {
	// Eight records whose hosts are eight spellings of a wildcard that
	// matches all eight again: chased one by one, seven deep, that was
	// millions of lookups for one query.
	bomb := numbered(8, "c%d.t.svc.skydns.test.", func(i int) string {
		pick := func(bit int, name string) string { return []string{name, "any"}[i>>bit&1] }
		return fmt.Sprintf(`{"host":"any.t.%s.%s.%s"}`, pick(0, "svc"), pick(1, "skydns"), pick(2, "test"))
	})
	big := numbered(maxQueryNodes+10, "n%d.big.skydns.test.", address)
	tests := []struct {
		name  string
		qname string
		limit string
	}{
		{"CNAME breadth", "t.svc.skydns.test.", limitChases},
		{"directory past the node limit", "big.skydns.test.", limitNodes},
		{"wildcard past the node limit", "any.big.skydns.test.", limitNodes},
	}
	h := newTestHandler(t, newTestConfig(), loadIndex(t, merged(bomb, big)))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := overBudget(h)
			m := ask(t, h, question(tc.qname, dns.TypeA, 1).SetEdns0(1232, false), "tcp")
			after, _ := overBudget(h)
			if m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 || m.IsEdns0() == nil {
				t.Fatalf("over budget: got %s with %d answers (OPT %v), want an empty SERVFAIL with OPT", dns.RcodeToString[m.Rcode], len(m.Answer), m.IsEdns0())
			}
			if after[tc.limit] != before[tc.limit]+1 {
				t.Fatalf("limit %s counted %v -> %v (all: %v)", tc.limit, before[tc.limit], after[tc.limit], after)
			}
		})
	}
	// The handler's next query starts with a fresh budget.
	if m := ask(t, h, question("n1.big.skydns.test.", dns.TypeA, 2), "udp"); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("a plain query after the others: %v", m)
	}
}

// kube2skyLayout is services×namespaces services as kube2sky writes them
// (legacy-behaviour §2.7): an address record and an SRV record for port
// http under each.
func kube2skyLayout(namespaces, services int) []msg.Service {
	out := make([]msg.Service, 0, 2*namespaces*services)
	for ns := range namespaces {
		for svc := range services {
			name := fmt.Sprintf("svc%d.ns%d.svc.skydns.test.", svc, ns)
			i := ns*services + svc
			out = append(out,
				msg.Service{Key: msg.Path("h."+name, "skydns"), Host: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)},
				msg.Service{Key: msg.Path("h._http._tcp."+name, "skydns"), Host: name, Port: 80},
			)
		}
	}
	return out
}

// At 100,000 services (1,000 namespaces of 100), every query a workload
// makes stays within the budget, and the queries that would read the
// whole cluster do not.
func TestBudgetAt100kServices(t *testing.T) {
	ix := NewIndex("skydns")
	ix.Replace(kube2skyLayout(1000, 100))
	h := newTestHandler(t, newTestConfig(), ix)
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		answers int    // For a query within the budget.
		limit   string // For one past it.
	}{
		{"a service", "svc42.ns7.svc.skydns.test.", dns.TypeA, 1, ""},
		{"its port", "_http._tcp.svc42.ns7.svc.skydns.test.", dns.TypeSRV, 1, ""},
		{"a namespace", "ns7.svc.skydns.test.", dns.TypeA, 100, ""},
		{"a service in every namespace", "svc42.any.svc.skydns.test.", dns.TypeA, 1000, ""},
		{"every service in a namespace", "any.ns7.svc.skydns.test.", dns.TypeA, 100, ""},
		{"a name that does not exist", "nothing.ns7.svc.skydns.test.", dns.TypeA, 0, ""},
		{"every service", "any.any.svc.skydns.test.", dns.TypeA, 0, limitNodes},
		{"the services directory", "svc.skydns.test.", dns.TypeA, 0, limitNodes},
		{"a missing service in every namespace's services", "nothing.any.any.svc.skydns.test.", dns.TypeA, 0, limitNodes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := overBudget(h)
			m := ask(t, h, question(tc.qname, tc.qtype, 1), "tcp")
			after, _ := overBudget(h)
			if tc.limit != "" {
				if m.Rcode != dns.RcodeServerFailure || after[tc.limit] != before[tc.limit]+1 {
					t.Fatalf("got %s, limit %s counted %v -> %v", dns.RcodeToString[m.Rcode], tc.limit, before[tc.limit], after[tc.limit])
				}
				return
			}
			wantRcode := dns.RcodeSuccess
			if tc.answers == 0 {
				wantRcode = dns.RcodeNameError
			}
			if m.Rcode != wantRcode || len(m.Answer) != tc.answers || !mapsEqual(after, before) {
				t.Fatalf("got %s with %d answers (want %d), over budget %v -> %v", dns.RcodeToString[m.Rcode], len(m.Answer), tc.answers, before, after)
			}
		})
	}
}

func mapsEqual(a, b map[string]float64) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return len(a) == len(b)
}

// stalledUpstream never answers: each exchange takes its whole timeout,
// or less when its context ends first.
type stalledUpstream struct {
	timeout time.Duration
	calls   atomic.Int32
}

func (s *stalledUpstream) Exchange(ctx context.Context, _ *dns.Msg, _, _ string) (*dns.Msg, error) {
	s.calls.Add(1)
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, context.DeadlineExceeded
	}
}

// Every upstream lookup one query causes shares one deadline: ten
// out-of-zone targets behind an upstream that never answers cost one
// window, not ten, and the query is SERVFAIL.
func TestUpstreamWorkOfAQueryHasOneDeadline(t *testing.T) {
	const targets = 10
	records := numbered(targets, "e%d.ext.skydns.test.", func(i int) string {
		return fmt.Sprintf(`{"host":"h%d.example.org"}`, i)
	})
	cfg := newTestConfig()
	cfg.ReadTimeout = 50 * time.Millisecond
	stalled := &stalledUpstream{timeout: cfg.ReadTimeout}
	h := newTestHandler(t, cfg, loadIndex(t, records), func(d *Deps) { d.Exchange = stalled })
	m := ask(t, h, question("ext.skydns.test.", dns.TypeA, 1), "udp")
	by, _ := overBudget(h)
	if m.Rcode != dns.RcodeServerFailure || by[limitUpstream] != 1 {
		t.Fatalf("got %s, upstream limit counted %v", dns.RcodeToString[m.Rcode], by[limitUpstream])
	}
	// Each target alone is tried twice (one server, one more attempt); one
	// window holds three attempts, and a timer never fires early.
	if calls := stalled.calls.Load(); calls > 4 {
		t.Fatalf("%d upstream exchanges for one query: the targets did not share one deadline", calls)
	}
}

// A legitimate headless service of 1,000 endpoints, the most one
// Endpoints object holds, is answered whole: addresses and SRV records
// with every target's address.
func TestBudgetFitsTheLargestEndpoints(t *testing.T) {
	const endpoints = 1000
	records := merged(
		numbered(endpoints, "e%d.hl.default.svc.skydns.test.", address),
		numbered(endpoints, "e%d._http._tcp.hl.default.svc.skydns.test.", func(i int) string {
			return fmt.Sprintf(`{"host":"e%d.hl.default.svc.skydns.test","port":80}`, i)
		}),
	)
	h := newTestHandler(t, newTestConfig(), loadIndex(t, records))
	for _, q := range []*dns.Msg{
		question("hl.default.svc.skydns.test.", dns.TypeA, 1),
		question("_http._tcp.hl.default.svc.skydns.test.", dns.TypeSRV, 2),
	} {
		m := ask(t, h, q, "tcp")
		if _, total := overBudget(h); total != 0 || len(m.Answer) != endpoints {
			t.Fatalf("%v: %s with %d answers, %v over budget", q.Question[0], dns.RcodeToString[m.Rcode], len(m.Answer), total)
		}
	}
}
