package skydns

import (
	"context"

	"github.com/miekg/dns"
)

// checkStep turns away, first, what no later step should see: a message
// without exactly one question (FORMERR), a query that looped back from a
// skydns stub forward (dropped unanswered, with -stubzones), and qtype ANY
// (REFUSED, as SkyDNS did).
type checkStep struct {
	dropStubLoops bool
	next          step
}

func (s *checkStep) serve(ctx context.Context, req *request) {
	if len(req.msg.Question) == 1 && req.q().Qtype != dns.TypeANY && (!s.dropStubLoops || !hasStubLoopOption(req.msg)) {
		s.next.serve(ctx, req)
		return
	}
	s.turnAway(req)
}

// turnAway answers what serve does not pass on. Out of line, like the
// cold branch of every step, so the frame that stays on the stack while
// later steps run is small: each query runs on a fresh goroutine, whose
// stack should not have to grow.
//
//go:noinline
func (s *checkStep) turnAway(req *request) {
	switch {
	case len(req.msg.Question) != 1:
		m := new(dns.Msg)
		m.SetRcode(req.msg, dns.RcodeFormatError)
		req.reply = reply{msg: m}
	case req.q().Qtype == dns.TypeANY:
		m := new(dns.Msg)
		m.SetRcode(req.msg, dns.RcodeRefused)
		m.RecursionDesired = false
		req.reply = reply{msg: m}
	default:
		req.reply = reply{} // A looped stub query: dropped.
	}
}
