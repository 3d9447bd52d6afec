package skydns

import (
	"context"

	"github.com/miekg/dns"
)

// checkStep turns away what no later step should see, with the rcode that
// says why:
//   - not exactly one question: FORMERR;
//   - with -stubzones, a query that looped back from a skydns stub
//     forward: dropped unanswered;
//   - an opcode other than QUERY (NOTIFY, UPDATE, ...): NOTIMP, so a
//     NOTIFY is never answered, nor forwarded, as if it were a query;
//   - a class other than IN and CHAOS: REFUSED (there is no data for it);
//   - zone transfers (AXFR, IXFR): REFUSED, never forwarded;
//   - qtype ANY: REFUSED, as SkyDNS did.
type checkStep struct {
	dropStubLoops bool
	next          step
}

func (s *checkStep) serve(ctx context.Context, req *request) {
	if s.passes(req) {
		s.next.serve(ctx, req)
		return
	}
	s.turnAway(req)
}

func (s *checkStep) passes(req *request) bool {
	if len(req.msg.Question) != 1 || req.msg.Opcode != dns.OpcodeQuery || s.looped(req) {
		return false
	}
	q := req.q()
	return (q.Qclass == dns.ClassINET || q.Qclass == dns.ClassCHAOS) && !refusedType(q.Qtype)
}

// refusedType reports the qtypes answered REFUSED whatever the name.
func refusedType(qtype uint16) bool {
	return qtype == dns.TypeANY || qtype == dns.TypeAXFR || qtype == dns.TypeIXFR
}

// looped reports a query to be dropped as one of our own stub forwards.
func (s *checkStep) looped(req *request) bool { return s.dropStubLoops && hasStubLoopOption(req.msg) }

// turnAway answers what serve does not pass on. Out of line, like the
// cold branch of every step, so the frame that stays on the stack while
// later steps run is small: each query runs on a fresh goroutine, whose
// stack should not have to grow.
//
//go:noinline
func (s *checkStep) turnAway(req *request) {
	switch {
	case len(req.msg.Question) != 1:
		req.reply = reply{msg: rcodeReply(req.msg, dns.RcodeFormatError)}
	case s.looped(req):
		req.reply = reply{} // Dropped.
	case req.msg.Opcode != dns.OpcodeQuery:
		req.reply = reply{msg: rcodeReply(req.msg, dns.RcodeNotImplemented)}
	default: // A foreign class, ANY, AXFR or IXFR.
		m := rcodeReply(req.msg, dns.RcodeRefused)
		m.RecursionDesired = false
		req.reply = reply{msg: m}
	}
}

// rcodeReply is an empty reply to req with rcode.
func rcodeReply(req *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, rcode)
	return m
}
