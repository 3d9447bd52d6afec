package skydns

import (
	"context"
	"errors"
	"strings"

	"github.com/miekg/dns"
)

// zoneStep answers names inside the cluster domain from the records,
// through the resolver, and is the one place its errors become rcodes. A
// name outside the domain goes on.
type zoneStep struct {
	res        *Resolver
	opts       ZoneOptions
	metrics    *Metrics
	localAlias string // local.dns.<domain>, answered as opts.Local.
	next       step
}

func newZoneStep(opts ZoneOptions, res *Resolver, metrics *Metrics, next step) *zoneStep {
	return &zoneStep{res: res, opts: opts, metrics: metrics, localAlias: "local.dns." + opts.Domain, next: next}
}

func (s *zoneStep) serve(ctx context.Context, req *request) {
	q, name := req.q(), req.name
	if s.opts.Local != "" && name == s.localAlias {
		q.Name, name = s.opts.Local, s.opts.Local // Answered under the asked owner below.
	}
	if !s.res.inZone(name) {
		s.next.serve(ctx, req)
		return
	}
	a := s.res.resolve(ctx, q, req.serial(), &req.work)
	m := authoritativeReply(req)
	switch {
	case errors.Is(a.err, errNameNotFound):
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{s.res.soa(s.opts.MinTTL, req.serial())}
		req.reply = reply{msg: m, fromZone: true, exact: true}
		return
	case a.err != nil:
		// Not loaded yet, broken, or over the query's budget: say so,
		// never a confident NXDOMAIN or a short answer.
		if req.work.over != "" {
			s.metrics.overBudget(req.work.over)
		}
		// fromZone: shaped like every zone reply, so an EDNS0 request
		// gets its OPT record.
		req.reply = reply{msg: servfail(req.msg, true), fromZone: true}
		return
	case len(a.answer) == 0:
		m.Ns = []dns.RR{s.res.soa(s.opts.MinTTL, req.serial())}
	}
	m.Answer, m.Extra = a.answer, a.extra
	if q.Name != req.q().Name {
		renameOwners(m.Answer, q.Name, req.q().Name)
	}
	req.reply = reply{msg: m, fromZone: true, exact: true}
}

func renameOwners(rrs []dns.RR, from, to string) {
	for _, rr := range rrs {
		if strings.EqualFold(rr.Header().Name, from) {
			rr.Header().Name = to
		}
	}
}
