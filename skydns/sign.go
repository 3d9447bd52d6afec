package skydns

import (
	"log/slog"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// encloserSource finds closest enclosers; the Index is the real one.
type encloserSource interface {
	closestEncloser(name string) string
}

// signer signs the replies the zone built for requests with the DO bit
// (-dnssec), online, as SkyDNS did (legacy-behaviour.md §2.11): every
// RRset of the domain in every section, the SOA of a denial included, and
// a denial's NSEC3 records (nsec3.go), with signatures kept in the
// signature cache (-scache). It runs inside the shaping step, after the
// answers have their final TTLs and before the fit to the client's
// buffer: what is signed is what is sent.
type signer struct {
	key     *SigningKey
	domain  string
	deny    denier
	cache   *sigCache
	names   encloserSource
	inZone  func(name string) bool
	metrics *Metrics
	log     *slog.Logger
}

// newSigner signs for opts.Zone's domain with its key; nil when the zone
// has none, which turns signing off.
func newSigner(opts Options, res *Resolver, names encloserSource, deps Deps) *signer {
	if opts.Zone.Key == nil {
		return nil
	}
	return &signer{
		key: opts.Zone.Key, domain: opts.Zone.Domain, deny: denier{domain: opts.Zone.Domain, ttl: opts.Zone.MinTTL},
		cache: newSigCache(opts.SignatureCache), names: names, inZone: res.inZone, metrics: deps.Metrics, log: deps.Log,
	}
}

// wants reports whether the reply m to req is to be signed: the request
// set DO, and m is an answer, NODATA or NXDOMAIN.
func (s *signer) wants(req *request, m *dns.Msg) bool {
	opt := req.msg.IsEdns0()
	return opt != nil && opt.Do() && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError)
}

// sign adds the denial for req's name, when m denies, and the signatures.
func (s *signer) sign(req *request, m *dns.Msg) {
	if s.inZone(req.name) {
		m.Ns = append(m.Ns, s.denial(req, m)...)
	}
	m.Answer = s.signSection(m.Answer, req.start)
	m.Ns = s.signSection(m.Ns, req.start)
	m.Extra = s.signSection(m.Extra, req.start)
	m.AuthenticatedData = true // As SkyDNS: the zone's own data, signed here.
}

// denial is the NSEC3 proof m needs: none for an answer.
func (s *signer) denial(req *request, m *dns.Msg) []dns.RR {
	switch {
	case m.Rcode == dns.RcodeNameError && req.name != s.domain:
		return s.deny.nxdomain(req.name, s.encloser(req.name))
	case m.Rcode == dns.RcodeNameError, len(m.Answer) == 0:
		return s.deny.nodata(req.name, req.q().Qtype)
	}
	return nil
}

// encloser is name's closest encloser in the zone: its deepest existing
// ancestor, the domain at least. A name created since the resolver found
// none has itself for deepest: then its parent stands in (the reply is
// stale already, and its basis says so, so it is not kept).
func (s *signer) encloser(name string) string {
	ce := s.names.closestEncloser(name)
	if !dns.IsSubDomain(s.domain, ce) || ce == name {
		ce = parentName(name)
	}
	if !dns.IsSubDomain(s.domain, ce) {
		ce = s.domain
	}
	return ce
}

// parentName is name less its first label; "." for a single label.
func parentName(name string) string {
	if i, end := dns.NextLabel(name, 0); !end {
		return name[i:]
	}
	return "."
}

// signSection appends a signature for each RRset of the domain in rrs.
func (s *signer) signSection(rrs []dns.RR, now time.Time) []dns.RR {
	for _, set := range s.rrsets(rrs) {
		if sig := s.signature(set, now); sig != nil {
			rrs = append(rrs, sig)
		}
	}
	return rrs
}

// rrsets groups the records of the domain in rrs by owner and type, in
// the order they first appear; OPT and RRSIG records are no RRsets to sign.
func (s *signer) rrsets(rrs []dns.RR) [][]dns.RR {
	type setKey struct {
		owner  string
		rrtype uint16
	}
	var sets [][]dns.RR
	index := map[setKey]int{}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == dns.TypeOPT || h.Rrtype == dns.TypeRRSIG || !s.inZone(h.Name) {
			continue
		}
		k := setKey{strings.ToLower(h.Name), h.Rrtype}
		if i, ok := index[k]; ok {
			sets[i] = append(sets[i], rr)
			continue
		}
		index[k] = len(sets)
		sets = append(sets, []dns.RR{rr})
	}
	return sets
}

// signature is the RRSIG of set at now, from the cache while it has
// signatureReuse left.
func (s *signer) signature(set []dns.RR, now time.Time) *dns.RRSIG {
	key := digestOf(set)
	if sig, ok := s.cache.get(key, now); ok {
		s.metrics.signatureHits.Inc()
		return sig
	}
	s.metrics.signatureMisses.Inc()
	sig := s.key.rrsig(s.domain, now)
	sig.Hdr.Ttl = set[0].Header().Ttl
	if err := sig.Sign(s.key.Private, set); err != nil {
		s.log.Warn("cannot sign", "name", set[0].Header().Name, "type", dns.TypeToString[set[0].Header().Rrtype], "err", err)
		return nil
	}
	s.cache.put(key, sig)
	return sig
}
