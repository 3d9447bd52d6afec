package skydns

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// reverseStep answers PTR queries for in-addr.arpa and ip6.arpa names from
// the record stored at the name (kube2sky writes one per service IP and
// per headless endpoint);
// a name with none goes on, and in the end upstream.
type reverseStep struct {
	res  *Resolver
	next step
}

func (s *reverseStep) serve(ctx context.Context, req *request) {
	if !isReverse(req) {
		s.next.serve(ctx, req)
		return
	}
	if m := s.answer(req); m != nil {
		req.reply = reply{msg: m, exact: true}
		return
	}
	s.next.serve(ctx, req)
}

// answer is the PTR reply from the records, nil without one. Out of line
// for the reason given at checkStep.turnAway.
//
//go:noinline
func (s *reverseStep) answer(req *request) *dns.Msg {
	ptr, ok := s.res.ptrRecord(req.q(), &req.work)
	if !ok {
		return nil
	}
	m := authoritativeReply(req)
	m.Answer = []dns.RR{ptr}
	m.Compress = compressionPays(uncompressedLen(m)) // As fit does for the zone's replies.
	return m
}

// isReverse is true for PTR queries of in-addr.arpa and ip6.arpa names.
// (SkyDNS took every qtype under ip6.arpa, through an operator-precedence
// slip; an AAAA query for such a name is now forwarded like any other.)
func isReverse(req *request) bool {
	return req.q().Qtype == dns.TypePTR &&
		(strings.HasSuffix(req.name, ".in-addr.arpa.") || strings.HasSuffix(req.name, ".ip6.arpa."))
}
