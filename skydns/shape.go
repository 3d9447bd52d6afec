package skydns

import (
	"context"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
)

// shapeStep post-processes the replies the zone step built from the
// records, as SkyDNS did (legacy-behaviour §2.8): duplicates out, one TTL
// for the answer set, round robin, and a fit to the client's buffer.
// Every other reply passes through as it is.
type shapeStep struct {
	opts    ReplyOptions
	metrics *Metrics
	next    step
}

func (s *shapeStep) serve(ctx context.Context, req *request) {
	s.next.serve(ctx, req)
	if req.reply.fromZone {
		s.shape(req, &req.reply)
	}
}

// shape post-processes a reply the zone built. Out of line for the reason
// given at checkStep.turnAway.
//
//go:noinline
func (s *shapeStep) shape(req *request, r *reply) {
	m := r.msg
	if len(m.Answer) > 1 {
		m.Answer = dedupRRs(m.Answer)
	}
	if len(m.Extra) > 1 {
		m.Extra = dedupRRs(m.Extra)
	}
	minimumTTL(m.Answer, s.opts.MaxTTL)
	if s.opts.RoundRobin {
		roundRobin(m.Answer)
		r.shuffled = len(m.Answer) > 1
	}
	r.msg = fit(req, m, s.opts.MaxUDPSize)
	if r.msg.Truncated && clientBuffer(req.msg) > int(s.opts.MaxUDPSize) {
		s.metrics.udpCapped.Inc() // The client would have taken more.
	}
}

// clientBuffer is the UDP reply size the client advertises: 512 without
// EDNS0.
func clientBuffer(req *dns.Msg) int {
	if opt := req.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}

// dedupRRs removes identical records, keeping order, and keeps one CNAME
// per owner. Not inlined, for the reason given at dedupServices.
//
//go:noinline
func dedupRRs(rrs []dns.RR) []dns.RR {
	if len(rrs) < 2 {
		return rrs
	}
	seen := make(map[string]bool, len(rrs))
	cnames := make(map[string]bool)
	out := rrs[:0]
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			owner := strings.ToLower(c.Hdr.Name)
			if cnames[owner] {
				continue
			}
			cnames[owner] = true
		}
		key := strings.ToLower(rr.String()[len(rr.Header().String()):]) + "|" + strings.ToLower(rr.Header().Name) + "|" + dns.TypeToString[rr.Header().Rrtype]
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, rr)
	}
	return out
}

// minimumTTL gives every answer the smallest TTL among them, so a client
// caching the set never holds one member longer than another.
func minimumTTL(rrs []dns.RR, ceiling uint32) {
	if len(rrs) < 2 {
		return
	}
	lowest := ceiling
	for _, rr := range rrs {
		lowest = min(lowest, rr.Header().Ttl)
	}
	for _, rr := range rrs {
		rr.Header().Ttl = lowest
	}
}

// roundRobin shuffles address answers so clients that take the first
// spread over endpoints. A chain with a CNAME keeps its order.
func roundRobin(rrs []dns.RR) {
	if len(rrs) < 2 {
		return
	}
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; t != dns.TypeA && t != dns.TypeAAAA {
			return
		}
	}
	rand.Shuffle(len(rrs), func(i, j int) { rrs[i], rrs[j] = rrs[j], rrs[i] })
}

// fit makes the reply fit the client's buffer, and over UDP maxUDP: extra
// records go first, then answers with TC set so the client retries over
// TCP. Over TCP an answer that cannot fit in 64 KiB is a SERVFAIL, not a
// silent cut.
func fit(req *request, m *dns.Msg, maxUDP uint16) *dns.Msg {
	size := min(clientBuffer(req.msg), int(maxUDP))
	if opt := req.msg.IsEdns0(); opt != nil {
		m.SetEdns0(advertisedUDPSize(opt), false)
	}
	if req.tcp {
		size = dns.MaxMsgSize
	}
	if n := uncompressedLen(m); n <= size {
		// Compression only pays when it keeps a reply under a limit; a
		// small reply is cheaper to send as it is.
		m.Compress = n > dns.MinMsgSize
		return m
	}
	if m.Len() <= size {
		return m
	}
	// Extra records are optional: drop them quietly first (RFC 2181 9: TC
	// only when required data is lost).
	m.Extra = onlyOPT(m.Extra)
	if m.Len() <= size {
		return m
	}
	answers := len(m.Answer)
	m.Truncate(size)
	if req.tcp && len(m.Answer) < answers {
		return servfail(req.msg, false)
	}
	return m
}

// advertisedUDPSize is the buffer size a reply's OPT record announces to a
// request with opt: the client's, at least 512 and at most 4096.
func advertisedUDPSize(opt *dns.OPT) uint16 {
	return uint16(min(max(int(opt.UDPSize()), dns.MinMsgSize), 4096))
}

// uncompressedLen is an upper bound of the packed size that is cheap to
// compute: most replies fit by this bound, which spares building the
// compression map twice (once to measure, once to pack).
func uncompressedLen(m *dns.Msg) int {
	compress := m.Compress
	m.Compress = false
	n := m.Len()
	m.Compress = compress
	return n
}

func onlyOPT(extra []dns.RR) []dns.RR {
	for _, rr := range extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			return []dns.RR{rr}
		}
	}
	return nil
}
