package skydns

import (
	"context"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
)

// shapeStep post-processes the replies the zone step built from the
// records, as SkyDNS did (legacy-behaviour §2.8): duplicates out, one TTL
// for the answer set, round robin, and a fit to the client's buffer. A
// reply relayed from upstream is fitted to the client too (SkyDNS passed
// it on as it came). Every other reply passes through as it is.
type shapeStep struct {
	opts    ReplyOptions
	metrics *Metrics
	signer  *signer // nil: the zone is not signed (-dnssec).
	next    step
}

func (s *shapeStep) serve(ctx context.Context, req *request) {
	s.next.serve(ctx, req)
	switch {
	case req.reply.fromZone:
		s.shape(req, &req.reply)
	case req.reply.relayed:
		s.fitRelayed(req, &req.reply)
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
		r.shuffled = roundRobin(m.Answer)
	}
	if s.signer == nil || !s.signer.wants(req, m) {
		r.msg = s.fit(req, m)
		return
	}
	// Signed once final, before the fit: a cut drops a signature with the
	// records it covers, and TC sends the client to TCP for the whole.
	s.signer.sign(req, m)
	r.msg = s.fit(req, m)
	if opt := r.msg.IsEdns0(); opt != nil {
		opt.SetDo() // RFC 3225: the DO bit is copied from the query.
	}
}

// fitRelayed makes a reply from upstream (or from the response cache)
// this client's own: the upstream's OPT record, which answered skydns's
// query and not the client's, gives way to one for the client, or to none
// when the client sent none; and it is fitted to the client's buffer and
// --max-udp-size like a local reply.
//
//go:noinline
func (s *shapeStep) fitRelayed(req *request, r *reply) {
	m := r.msg
	m.Extra = withoutOPT(m.Extra)
	opt := req.msg.IsEdns0()
	if m.Rcode > 0xF && opt == nil {
		m.Rcode = dns.RcodeServerFailure // An extended rcode needs an OPT record to travel in.
	}
	r.msg = s.fit(req, m)
	if answer := r.msg.IsEdns0(); answer != nil && opt.Do() {
		answer.SetDo() // RFC 3225: the DO bit is copied from the query.
	}
}

// fit fits m to the client (see fit), counting a reply cut only because
// of --max-udp-size.
func (s *shapeStep) fit(req *request, m *dns.Msg) *dns.Msg {
	m = fit(req, m, s.opts.MaxUDPSize)
	if m.Truncated && !req.tcp && clientBuffer(req.msg) > int(s.opts.MaxUDPSize) {
		s.metrics.udpCapped.Inc() // The client would have taken more.
	}
	return m
}

func withoutOPT(extra []dns.RR) []dns.RR {
	out := extra[:0]
	for _, rr := range extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			out = append(out, rr)
		}
	}
	return out
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
		key := rrKey(rr)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, rr)
	}
	return out
}

// rrKey identifies a record by owner, type and data, regardless of TTL
// and letter case. Addresses, nearly every record a large answer holds,
// are keyed from their bytes: formatting each as text cost most of a
// 3,000-record reply's time.
func rrKey(rr dns.RR) string {
	owner := strings.ToLower(rr.Header().Name)
	switch v := rr.(type) {
	case *dns.A:
		return owner + "|A|" + string(v.A.To4())
	case *dns.AAAA:
		return owner + "|AAAA|" + string(v.AAAA.To16())
	}
	return strings.ToLower(rr.String()[len(rr.Header().String()):]) + "|" + owner + "|" + dns.TypeToString[rr.Header().Rrtype]
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
// spread over endpoints, and reports whether it did. A chain with a CNAME
// keeps its order.
func roundRobin(rrs []dns.RR) bool {
	if len(rrs) < 2 {
		return false
	}
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; t != dns.TypeA && t != dns.TypeAAAA {
			return false
		}
	}
	rand.Shuffle(len(rrs), func(i, j int) { rrs[i], rrs[j] = rrs[j], rrs[i] })
	return true
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
		m.Compress = compressionPays(n)
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

// compressionPays says whether a reply of n bytes uncompressed that fits
// as it is should be compressed all the same: only past 512 bytes, where
// compression may keep it under a client's limit. A small reply is cheaper
// to send as it is, and packing with compression (a map of names for each
// message) was 39% of a PTR miss at 100,000 services
// (docs/benchmarks-cores.md).
func compressionPays(n int) bool { return n > dns.MinMsgSize }

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
