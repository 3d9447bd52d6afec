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

func (s *checkStep) serve(ctx context.Context, req request) reply {
	switch {
	case len(req.msg.Question) != 1:
		m := new(dns.Msg)
		m.SetRcode(req.msg, dns.RcodeFormatError)
		return reply{msg: m}
	case s.dropStubLoops && hasStubLoopOption(req.msg):
		return reply{}
	case req.q().Qtype == dns.TypeANY:
		m := new(dns.Msg)
		m.SetRcode(req.msg, dns.RcodeRefused)
		m.RecursionDesired = false
		return reply{msg: m}
	}
	return s.next.serve(ctx, req)
}
