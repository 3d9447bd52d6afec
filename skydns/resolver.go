package skydns

import (
	"context"
	"errors"
	"math"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/skydns/msg"
)

// maxCNAMEChain is how many records may precede a CNAME before chasing
// stops, as in SkyDNS (which logged and skipped past 7).
const maxCNAMEChain = 7

// targetLookup resolves out-of-zone CNAME, SRV and MX targets upstream.
type targetLookup interface {
	Lookup(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// Resolver builds answers for names inside the domain from records. It is
// pure apart from upstream lookups of names outside the domain.
type Resolver struct {
	opts     ZoneOptions
	source   recordSource
	upstream targetLookup // nil: out-of-zone targets are not chased.
	// window is how long all upstream lookups of one query may take
	// together.
	window time.Duration
	// nameserver is the SOA's MNAME, ns.dns.<domain>: made once, not for
	// each negative reply.
	nameserver string
}

// newResolver answers from source; upstream may be nil.
func newResolver(opts ZoneOptions, source recordSource, upstream targetLookup, window time.Duration) *Resolver {
	return &Resolver{opts: opts, source: source, upstream: upstream, window: window, nameserver: "ns.dns." + opts.Domain}
}

// answer is what the resolver found for one question: the records for the
// answer and additional sections, or an error (errNameNotFound for a name
// that does not exist). What it read to get there, the query's budget
// holds (records, lookupUpstream).
type answer struct {
	answer, extra []dns.RR
	err           error
}

// resolve answers q, a name inside the domain, by qtype, within the
// query's budget b. serial is the SOA serial of the request's hour.
func (r *Resolver) resolve(ctx context.Context, q dns.Question, serial uint32, b *budget) answer {
	a := r.resolveWithin(ctx, q, serial, b)
	if err := b.exceeded(); err != nil {
		// Part of the answer may be missing: say so, not a short answer.
		return answer{err: err}
	}
	return a
}

func (r *Resolver) resolveWithin(ctx context.Context, q dns.Question, serial uint32, b *budget) answer {
	// No deadline here: a timer per query costs more than the lookup, and
	// the only blocking work, upstream lookups of chased targets, sets the
	// budget's one deadline when it starts.
	var a answer
	switch {
	case q.Qtype == dns.TypeSOA && r.isApex(q.Name):
		a.answer = []dns.RR{r.soa(r.opts.TTL, serial)}
	case q.Qtype == dns.TypeDNSKEY && r.opts.Key != nil && r.isApex(q.Name):
		a.answer = []dns.RR{r.dnskey()}
	case q.Qtype == dns.TypeNS && r.isApex(q.Name):
		a.answer, a.extra, a.err = r.nsRecords(q, b)
		if errors.Is(a.err, errNameNotFound) {
			a.err = nil // The apex exists even with no NS records: NODATA, not NXDOMAIN.
		}
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA:
		a.answer, a.err = r.addressRecords(ctx, b, q, nil, false)
	case q.Qtype == dns.TypeTXT:
		a.answer, a.err = r.txtRecords(q, b)
	case q.Qtype == dns.TypeCNAME:
		a.answer, a.err = r.cnameRecords(q, b)
	case q.Qtype == dns.TypeMX:
		a.answer, a.extra, a.err = r.mxRecords(ctx, q, b)
	case q.Qtype == dns.TypeSRV:
		a.answer, a.extra, a.err = r.srvRecords(ctx, q, b)
	default:
		// Other types exist or not as the name does, and have no data.
		_, a.err = r.records(q.Name, false, b)
	}
	return a
}

// isApex reports whether name is the domain itself.
func (r *Resolver) isApex(name string) bool { return strings.EqualFold(dns.Fqdn(name), r.opts.Domain) }

// inZone reports whether name is the domain or below it, matching whole
// labels (SkyDNS matched a plain string suffix, so "foocluster.local."
// counted as inside "cluster.local."). Case-insensitive.
func (r *Resolver) inZone(name string) bool {
	d := r.opts.Domain
	if len(name) < len(d) {
		return false
	}
	// The domain is lowercase, as almost every name asked is: equality
	// first spares EqualFold on the hot path.
	if suffix := name[len(name)-len(d):]; suffix != d && !strings.EqualFold(suffix, d) {
		return false
	}
	return len(name) == len(d) || name[len(name)-len(d)-1] == '.'
}

// addressRecords answers A and AAAA (both with both, for additional
// sections), chasing names into CNAME chains. previous holds the chain so
// far, to stop loops and overlong chains.
func (r *Resolver) addressRecords(ctx context.Context, b *budget, q dns.Question, previous []dns.RR, both bool) ([]dns.RR, error) {
	sx, err := r.records(q.Name, false, b)
	if err != nil {
		return nil, err
	}
	return r.addressesOf(ctx, b, q, sx, previous, both), nil
}

func (r *Resolver) addressesOf(ctx context.Context, b *budget, q dns.Question, sx []*record, previous []dns.RR, both bool) []dns.RR {
	var out []dns.RR
	for _, s := range sx {
		ip := s.HostIP()
		switch {
		case s.Host == "":
			// A text-only record (TXT) has no address.
		case ip == nil:
			out = append(out, r.chaseCNAME(ctx, b, q, s, previous, both)...)
		case ip.To4() != nil && (both || q.Qtype == dns.TypeA):
			out = append(out, newA(q.Name, r.ttl(s), ip))
		case ip.To4() == nil && (both || q.Qtype == dns.TypeAAAA):
			out = append(out, newAAAA(q.Name, r.ttl(s), ip))
		}
	}
	return out
}

// chaseCNAME answers a record whose host is a name: a CNAME to it followed
// by the target's own addresses, from the index or, outside the domain,
// from upstream. A target that resolves to nothing drops the CNAME. Each
// chase is charged to b, so a wide answer of names is bounded as well as
// a deep one.
func (r *Resolver) chaseCNAME(ctx context.Context, b *budget, q dns.Question, s *record, previous []dns.RR, both bool) []dns.RR {
	target := strings.ToLower(dns.Fqdn(s.Host))
	if strings.EqualFold(q.Name, target) || len(previous) > maxCNAMEChain || cnameSeen(previous, target) {
		return nil // A direct loop, a loop through others, or too long.
	}
	if !b.chase() {
		return nil
	}
	cname := &dns.CNAME{Hdr: rrHeader(q.Name, dns.TypeCNAME, r.ttl(s)), Target: target}
	next := dns.Question{Name: target, Qtype: q.Qtype, Qclass: q.Qclass}
	chain := append(previous[:len(previous):len(previous)], cname)
	rrs, err := r.addressRecords(ctx, b, next, chain, both)
	if err == nil && len(rrs) > 0 {
		return append([]dns.RR{cname}, rrs...)
	}
	if !errors.Is(err, errNameNotFound) || r.inZone(target) || r.upstream == nil {
		return nil
	}
	m, err := r.lookupUpstream(ctx, b, target, q.Qtype)
	if err != nil || len(m.Answer) == 0 {
		return nil
	}
	return append([]dns.RR{cname}, r.upstreamTTL(m.Answer)...)
}

// lookupUpstream asks upstream for name, as one of the query's chased names
// and within its one upstream deadline. What upstream says is no record's:
// a reply holding it, or built from its silence, is never kept packed.
func (r *Resolver) lookupUpstream(ctx context.Context, b *budget, name string, qtype uint16) (*dns.Msg, error) {
	b.read(Version{})
	if !b.chase() {
		return nil, errOverBudget
	}
	ctx, cancel := b.upstreamContext(ctx, r.window)
	defer cancel()
	m, err := r.upstream.Lookup(ctx, name, qtype)
	b.upstreamDone(ctx)
	return m, err
}

func cnameSeen(chain []dns.RR, target string) bool {
	for _, rr := range chain {
		if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Target, target) {
			return true
		}
	}
	return false
}

// upstreamTTL gives upstream answers the rcache TTL, as SkyDNS did, so a
// chased target is re-resolved at a predictable pace.
func (r *Resolver) upstreamTTL(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		rr = dns.Copy(rr)
		rr.Header().Ttl = r.opts.UpstreamTTL
		out[i] = rr
	}
	return out
}

// srvWeights is, per priority, the sum of weights, a weight of 0 counting
// as 100.
func srvWeights(sx []*record, priority func(*record) int) map[int]int {
	sums := make(map[int]int)
	for _, s := range sx {
		if s.Host == "" {
			continue
		}
		sums[priority(s)] += weightOf(s)
	}
	return sums
}

func weightOf(s *record) int {
	if s.Weight == 0 {
		return 100
	}
	return int(s.Weight)
}

// srvRecords answers SRV: one record per service, weights scaled so each
// priority's weights add up to about 100, plus addresses of the targets in
// extra.
func (r *Resolver) srvRecords(ctx context.Context, q dns.Question, b *budget) (answer, extra []dns.RR, err error) {
	sx, err := r.records(q.Name, false, b)
	if err != nil {
		return nil, nil, err
	}
	sums := srvWeights(sx, r.priority)
	looked := make(map[string]bool)
	for _, s := range sx {
		if s.Host == "" {
			continue // A text-only record is no service.
		}
		prio := r.priority(s)
		weight := uint16(math.Floor(100.0 / float64(sums[prio]) * float64(weightOf(s))))
		target, addrs := r.target(ctx, b, s, looked)
		answer = append(answer, &dns.SRV{
			Hdr:      rrHeader(q.Name, dns.TypeSRV, r.ttl(s)),
			Priority: uint16(prio), Weight: weight, Port: s.Port, Target: target,
		})
		extra = append(extra, addrs...)
	}
	return answer, extra, nil
}

// target is the SRV or MX target of s, and the addresses to put in extra
// for it (only the first time a target is seen, tracked in looked). An IP
// host is named by its own key; a name host is the name itself.
func (r *Resolver) target(ctx context.Context, b *budget, s *record, looked map[string]bool) (string, []dns.RR) {
	if ip := s.HostIP(); ip != nil {
		name := msg.TargetStrip(s.Domain(), int(s.TargetStrip))
		return name, []dns.RR{addressRR(name, r.ttl(s), ip)}
	}
	name := msg.TargetStrip(dns.Fqdn(s.Host), int(s.TargetStrip))
	if looked[name] {
		return name, nil
	}
	looked[name] = true
	if r.inZone(name) {
		rrs, err := r.addressRecords(ctx, b, dns.Question{Name: name, Qtype: dns.TypeA, Qclass: dns.ClassINET}, nil, true)
		if err != nil {
			return name, nil
		}
		return name, rrs
	}
	return name, r.upstreamAddresses(ctx, b, name)
}

// upstreamAddresses is the A and AAAA of an out-of-zone target, as SkyDNS
// put them in the additional section: the A answer whole, with the CNAMEs
// upstream puts before the addresses, and of the AAAA answer only the
// AAAA records (legacy-behaviour.md §2.6).
func (r *Resolver) upstreamAddresses(ctx context.Context, b *budget, name string) []dns.RR {
	if r.upstream == nil {
		return nil
	}
	var out []dns.RR
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m, err := r.lookupUpstream(ctx, b, name, qtype)
		if err != nil {
			continue
		}
		for _, rr := range r.upstreamTTL(m.Answer) {
			if qtype == dns.TypeA || rr.Header().Rrtype == qtype {
				out = append(out, rr)
			}
		}
	}
	return out
}

// mxRecords answers MX from records with mail set; priority is the
// preference.
func (r *Resolver) mxRecords(ctx context.Context, q dns.Question, b *budget) (answer, extra []dns.RR, err error) {
	sx, err := r.records(q.Name, false, b)
	if err != nil {
		return nil, nil, err
	}
	looked := make(map[string]bool)
	for _, s := range sx {
		if !s.Mail() {
			continue
		}
		target, addrs := r.target(ctx, b, s, looked)
		answer = append(answer, &dns.MX{Hdr: rrHeader(q.Name, dns.TypeMX, r.ttl(s)), Preference: uint16(r.priority(s)), Mx: target})
		extra = append(extra, addrs...)
	}
	return answer, extra, nil
}

// txtRecords answers TXT from every record with text.
func (r *Resolver) txtRecords(q dns.Question, b *budget) ([]dns.RR, error) {
	sx, err := r.records(q.Name, false, b)
	if err != nil {
		return nil, err
	}
	var out []dns.RR
	for _, s := range sx {
		if s.Text() != "" {
			out = append(out, &dns.TXT{Hdr: rrHeader(q.Name, dns.TypeTXT, r.ttl(s)), Txt: splitText(s.Text())})
		}
	}
	return out, nil
}

// splitText cuts text into the 255-byte strings a TXT record holds.
func splitText(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// cnameRecords answers a CNAME query: only a leaf whose host is a name.
func (r *Resolver) cnameRecords(q dns.Question, b *budget) ([]dns.RR, error) {
	sx, err := r.records(q.Name, true, b)
	if err != nil {
		return nil, err
	}
	var out []dns.RR
	for _, s := range sx {
		if s.HostIP() == nil && s.Host != "" {
			out = append(out, &dns.CNAME{Hdr: rrHeader(q.Name, dns.TypeCNAME, r.ttl(s)), Target: dns.Fqdn(s.Host)})
		}
	}
	return out, nil
}

// nsRecords answers NS at the apex from the records under ns.dns.<domain>,
// which must be addresses; each is named by its key and glued in extra.
func (r *Resolver) nsRecords(q dns.Question, b *budget) (answer, extra []dns.RR, err error) {
	sx, err := r.records("ns.dns."+r.opts.Domain, false, b)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range sx {
		ip := s.HostIP()
		if ip == nil {
			continue
		}
		name := s.Domain()
		answer = append(answer, &dns.NS{Hdr: rrHeader(q.Name, dns.TypeNS, r.ttl(s)), Ns: name})
		extra = append(extra, addressRR(name, r.ttl(s), ip))
	}
	return answer, extra, nil
}

// ptrRecord answers a reverse name from the one record stored at it.
func (r *Resolver) ptrRecord(q dns.Question, b *budget) (dns.RR, bool) {
	sx, err := r.records(q.Name, true, b)
	if err != nil || len(sx) != 1 || sx[0].Host == "" {
		return nil, false
	}
	return &dns.PTR{Hdr: rrHeader(q.Name, dns.TypePTR, r.ttl(sx[0])), Ptr: dns.Fqdn(sx[0].Host)}, true
}

// soa is the zone's SOA with the given TTL. The serial is the current hour,
// as in SkyDNS: the data changes continuously and nothing transfers zones.
func (r *Resolver) soa(ttl uint32, serial uint32) dns.RR {
	return &dns.SOA{
		Hdr:     rrHeader(r.opts.Domain, dns.TypeSOA, ttl),
		Ns:      r.nameserver,
		Mbox:    r.opts.Hostmaster,
		Serial:  serial,
		Refresh: 28800,
		Retry:   7200,
		Expire:  604800,
		Minttl:  r.opts.MinTTL,
	}
}

// dnskey is the zone's public key, with the zone's TTL.
func (r *Resolver) dnskey() dns.RR {
	k := *r.opts.Key.DNSKEY
	k.Hdr = rrHeader(r.opts.Domain, dns.TypeDNSKEY, r.opts.TTL)
	return &k
}

func rrHeader(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

func newA(name string, ttl uint32, ip net.IP) *dns.A {
	return &dns.A{Hdr: rrHeader(name, dns.TypeA, ttl), A: ip.To4()}
}

func newAAAA(name string, ttl uint32, ip net.IP) *dns.AAAA {
	return &dns.AAAA{Hdr: rrHeader(name, dns.TypeAAAA, ttl), AAAA: ip}
}

// addressRR is the A or AAAA record for ip, whichever its family is.
func addressRR(name string, ttl uint32, ip net.IP) dns.RR {
	if ip.To4() != nil {
		return newA(name, ttl, ip)
	}
	return newAAAA(name, ttl, ip)
}
