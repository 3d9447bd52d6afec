package skydns

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Handler answers DNS queries: in-zone names from the resolver, reverse
// names from their PTR records, everything else forwarded.
type Handler struct {
	cfg     *Config
	res     *Resolver
	fwd     *Forwarder // nil: no forwarding (-no-rec or no nameservers).
	stubs   *stubZones // nil unless -stubzones.
	cache   *responseCache
	packed  *packedAnswers // nil: --answer-cache=0.
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
}

// NewHandler wires the pieces of the query path together.
func NewHandler(cfg *Config, index *Index, metrics *Metrics, log *slog.Logger) *Handler {
	fwd := NewForwarder(cfg, metrics)
	var upstream upstreamLookup
	if fwd != nil {
		upstream = fwd
	}
	h := &Handler{
		cfg: cfg, res: NewResolver(cfg, index, upstream), fwd: fwd, metrics: metrics, log: log, now: time.Now,
		cache:  newResponseCache(cfg.RCache, time.Duration(cfg.RCacheTTL)*time.Second, time.Now),
		packed: newPackedAnswers(cfg.AnswerCache),
	}
	if cfg.StubZones {
		h.stubs = newStubZones(cfg, index, metrics)
	}
	return h
}

// ServeDNS implements dns.Handler.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := h.now() // Also the clock of the SOA serial, read once per query.
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		h.write(w, m, proto, start)
		return
	}
	h.metrics.request(proto, req.Question[0].Qtype)
	if h.packed == nil {
		h.serveBuilt(w, req, proto, start)
		return
	}
	h.servePacked(w, req, proto, start)
}

// servePacked answers from the packed replies when it can, and keeps the
// reply it had to build when that qualifies.
func (h *Handler) servePacked(w dns.ResponseWriter, req *dns.Msg, proto string, start time.Time) {
	key, ok := answerKeyOf(req)
	if !ok {
		h.serveBuilt(w, req, proto, start)
		return
	}
	serial := serialAt(start)
	q := req.Question[0]
	if wire := h.packed.get(key, serial); wire != nil {
		h.metrics.packedHits.Inc()
		h.writeErr(h.packed.write(w, req.Id, wire))
		h.account(q, packedRcode(wire), packedAnswerCount(wire), proto, start)
		return
	}
	h.metrics.packedMisses.Inc()
	m, version := h.route(req, proto)
	// A change that landed while the reply was built has made the
	// version stale already: such a reply goes out but is not kept.
	if m == nil || !version.Current() || !cacheableReply(m, h.cfg.RoundRobin) {
		h.send(w, m, proto, start)
		return
	}
	wire, err := m.Pack()
	if err != nil {
		h.send(w, m, proto, start)
		return
	}
	h.packed.put(key, version, serial, wire)
	_, err = w.Write(wire) // Already carries the request's id.
	h.writeErr(err)
	h.account(q, m.Rcode, len(m.Answer), proto, start)
}

func (h *Handler) writeErr(err error) {
	if err != nil {
		h.log.Debug("write reply", "err", err)
	}
}

// serveBuilt answers by building the reply.
func (h *Handler) serveBuilt(w dns.ResponseWriter, req *dns.Msg, proto string, start time.Time) {
	h.send(w, h.answer(req, proto), proto, start)
}

// send writes m, or counts a drop when the pipeline chose not to answer.
func (h *Handler) send(w dns.ResponseWriter, m *dns.Msg, proto string, start time.Time) {
	if m == nil {
		h.metrics.dropped.Inc()
		return
	}
	h.write(w, m, proto, start)
}

func (h *Handler) write(w dns.ResponseWriter, m *dns.Msg, proto string, start time.Time) {
	h.writeErr(w.WriteMsg(m))
	var q dns.Question // None in a FORMERR to a question-less request.
	if len(m.Question) > 0 {
		q = m.Question[0]
	}
	h.account(q, m.Rcode, len(m.Answer), proto, start)
}

// account records a sent reply in the metrics and, at debug level, the log.
func (h *Handler) account(q dns.Question, rcode, answers int, proto string, start time.Time) {
	h.metrics.response(proto, rcode, time.Since(start).Seconds())
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.logQuery(q, rcode, answers, proto, start)
	}
}

// logQuery is out of line to keep the frame of account, on every query's
// path, small.
//
//go:noinline
func (h *Handler) logQuery(q dns.Question, rcode, answers int, proto string, start time.Time) {
	h.log.Debug("query", "name", q.Name, "type", dns.TypeToString[q.Qtype], "proto", proto,
		"rcode", dns.RcodeToString[rcode], "answers", answers, "seconds", time.Since(start).Seconds())
}

// answer is the query pipeline of SkyDNS's ServeDNS, in its order. A nil
// reply means drop.
func (h *Handler) answer(req *dns.Msg, proto string) *dns.Msg {
	m, _ := h.route(req, proto)
	return m
}

// route runs the pipeline, with the Version of the records the reply came
// from when it came from them alone (see local); only such a reply may be
// kept packed.
func (h *Handler) route(req *dns.Msg, proto string) (*dns.Msg, Version) {
	q := req.Question[0]
	if h.stubs != nil && hasStubLoopOption(req) {
		return nil, Version{}
	}
	if q.Qtype == dns.TypeANY {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		m.RecursionDesired = false
		return m, Version{}
	}
	name := strings.ToLower(q.Name)
	if h.stubs != nil {
		if _, servers := h.stubs.match(name); servers != nil {
			return h.relay(req, proto, func(ctx context.Context) (*dns.Msg, error) {
				return h.stubs.forward(ctx, req, proto, servers)
			}), Version{}
		}
	}
	if h.cfg.Local != "" && name == "local.dns."+h.cfg.Domain {
		q.Name = h.cfg.Local // Answer for the -local name, under the asked owner below.
		name = h.cfg.Local
	}
	if isReverse(q) {
		if ptr, ok := h.res.ptrRecord(q); ok {
			m := h.reply(req)
			ptr.Header().Name = req.Question[0].Name
			m.Answer = []dns.RR{ptr}
			return m, Version{}
		}
		return h.forward(req, proto), Version{}
	}
	if q.Qclass != dns.ClassCHAOS && !h.res.inZone(name) {
		return h.forward(req, proto), Version{}
	}
	return h.local(req, q, proto)
}

// isReverse is true for PTR queries of in-addr.arpa and ip6.arpa names.
// (SkyDNS took every qtype under ip6.arpa, through an operator-precedence
// slip; an AAAA query for such a name is now forwarded like any other.)
func isReverse(q dns.Question) bool {
	if q.Qtype != dns.TypePTR {
		return false
	}
	name := strings.ToLower(q.Name)
	return strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa.")
}

// servfail is an empty SERVFAIL reply; ra says whether recursion is offered.
func servfail(req *dns.Msg, ra bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = ra
	return m
}

func (h *Handler) reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Compress = true
	return m
}

// forward relays a name outside the domain, SERVFAIL when it cannot.
func (h *Handler) forward(req *dns.Msg, proto string) *dns.Msg {
	if h.fwd == nil {
		return servfail(req, !h.cfg.NoRec)
	}
	if m := h.cache.get(req, proto == "tcp"); m != nil {
		return m
	}
	m := h.relay(req, proto, func(ctx context.Context) (*dns.Msg, error) { return h.fwd.Forward(ctx, req, proto) })
	if m.Rcode != dns.RcodeServerFailure {
		h.cache.put(req, proto == "tcp", m)
	}
	return m
}

// relay runs one upstream exchange with a deadline covering every attempt.
func (h *Handler) relay(req *dns.Msg, proto string, send func(context.Context) (*dns.Msg, error)) *dns.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), h.upstreamBudget())
	defer cancel()
	m, err := send(ctx)
	if err != nil {
		h.log.Debug("forward failed", "name", req.Question[0].Name, "proto", proto, "err", err)
		m = servfail(req, true)
	}
	return m
}

// upstreamBudget bounds one query's upstream work: every server tried once
// and one more, as in the failover rule.
func (h *Handler) upstreamBudget() time.Duration {
	return time.Duration(len(h.cfg.Nameservers)+2) * h.cfg.ReadTimeout
}

// local answers a name inside the domain (or a CHAOS query). The Version
// is taken for A and AAAA, the queries worth keeping packed, when the reply
// holds nothing but what the records say; otherwise it is the zero one.
func (h *Handler) local(req *dns.Msg, q dns.Question, proto string) (*dns.Msg, Version) {
	m := h.reply(req)
	if q.Qclass == dns.ClassCHAOS {
		return h.chaos(req, q), Version{}
	}
	// No deadline here: a timer per query costs more than the lookup, and
	// the only blocking work, upstream lookups of chased targets, is
	// bounded by the forwarder's per-exchange timeout.
	ctx := context.Background()
	var err error
	var version Version
	switch {
	case q.Qtype == dns.TypeSOA && dns.Fqdn(strings.ToLower(q.Name)) == h.cfg.Domain:
		m.Answer = []dns.RR{h.res.soa(h.cfg.TTL, h.serial())}
	case q.Qtype == dns.TypeNS && strings.ToLower(q.Name) == h.cfg.Domain:
		m.Answer, m.Extra, err = h.res.nsRecords(q)
		if errors.Is(err, errNameNotFound) {
			err = nil // The apex exists even with no NS records: NODATA, not NXDOMAIN.
		}
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA:
		m.Answer, version, err = h.res.addressAnswer(ctx, q)
	case q.Qtype == dns.TypeTXT:
		m.Answer, err = h.res.txtRecords(q)
	case q.Qtype == dns.TypeCNAME:
		m.Answer, err = h.res.cnameRecords(q)
	case q.Qtype == dns.TypeMX:
		m.Answer, m.Extra, err = h.res.mxRecords(ctx, q)
	case q.Qtype == dns.TypeSRV:
		m.Answer, m.Extra, err = h.res.srvRecords(ctx, q)
	default:
		// Other types exist or not as the name does, and have no data.
		_, err = h.res.records(q.Name, false)
	}
	if req.Question[0].Name != q.Name {
		renameOwners(m.Answer, q.Name, req.Question[0].Name)
	}
	return h.finish(req, m, err, proto), version
}

// finish maps the lookup error to an rcode (the one place that does),
// adds the SOA to negative answers, and post-processes the rest.
func (h *Handler) finish(req, m *dns.Msg, err error, proto string) *dns.Msg {
	switch {
	case errors.Is(err, errNameNotFound):
		m.Rcode = dns.RcodeNameError
		m.Answer, m.Extra = nil, nil
		m.Ns = []dns.RR{h.res.soa(h.cfg.MinTTL, h.serial())}
	case err != nil:
		// Not loaded yet, or broken: say so, never a confident NXDOMAIN.
		return servfail(req, true)
	case len(m.Answer) == 0:
		m.Ns = []dns.RR{h.res.soa(h.cfg.MinTTL, h.serial())}
	}
	if len(m.Answer) > 1 {
		m.Answer = dedupRRs(m.Answer)
	}
	if len(m.Extra) > 1 {
		m.Extra = dedupRRs(m.Extra)
	}
	minimumTTL(m.Answer, h.cfg.TTL)
	if h.cfg.RoundRobin {
		roundRobin(m.Answer)
	}
	return h.fit(req, m, proto)
}

// fit makes the reply fit the client's buffer: over UDP extra records go
// first, then answers with TC set so the client retries over TCP. Over TCP
// an answer that cannot fit in 64 KiB is a SERVFAIL, not a silent cut.
func (h *Handler) fit(req, m *dns.Msg, proto string) *dns.Msg {
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
		m.SetEdns0(advertisedUDPSize(opt), false)
	}
	if proto == "tcp" {
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
	if proto == "tcp" && len(m.Answer) < answers {
		return servfail(req, false)
	}
	return m
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

// serial is the SOA serial: the current time truncated to the hour.
func (h *Handler) serial() uint32 { return serialAt(h.now()) }

// serialAt is the SOA serial at t: t truncated to the hour.
func serialAt(t time.Time) uint32 { return uint32(t.Truncate(time.Hour).Unix()) }

// chaos answers the CHAOS TXT names servers traditionally identify with.
func (h *Handler) chaos(req *dns.Msg, q dns.Question) *dns.Msg {
	m := h.reply(req)
	name := strings.ToLower(q.Name)
	var texts []string
	if q.Qtype == dns.TypeTXT {
		switch name {
		case "authors.bind.", h.cfg.Domain:
			texts = []string{"Erik St. Martin", "Brian Ketelsen", "Miek Gieben", "Michael Crosby"}
			rand.Shuffle(len(texts), func(i, j int) { texts[i], texts[j] = texts[j], texts[i] })
		case "version.bind.", "version.server.":
			texts = []string{legacyVersion}
		case "hostname.bind.", "id.server.":
			texts = []string{"localhost"}
		}
	}
	if texts == nil {
		m.SetRcode(req, dns.RcodeServerFailure)
		return m
	}
	for _, t := range texts {
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}, Txt: []string{t}})
	}
	return m
}

// legacyVersion is what SkyDNS 2.5.2c said to version.bind; monitoring
// that pins it keeps working.
const legacyVersion = "2.5.2c"

func renameOwners(rrs []dns.RR, from, to string) {
	for _, rr := range rrs {
		if strings.EqualFold(rr.Header().Name, from) {
			rr.Header().Name = to
		}
	}
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
