package skydns

import (
	"context"
	"sync"

	"github.com/miekg/dns"
)

// packedStep answers repeated in-zone A and AAAA queries from replies kept
// in wire form, and keeps the replies the steps after it built when they
// are exact: built from the records alone (a current Version), the same
// for every request with the key (not shuffled), and the same over either
// transport (at most 512 bytes: neither truncated nor compressed). Only
// answers, NODATA and NXDOMAIN qualify.
type packedStep struct {
	cache   *packedAnswers
	metrics *Metrics
	next    step
}

func (s *packedStep) serve(ctx context.Context, req *request) {
	key, ok := answerKeyOf(req)
	if !ok {
		s.next.serve(ctx, req)
		return
	}
	serial := req.serial()
	if wire := s.cache.get(key, serial); wire != nil {
		s.metrics.packedHits.Inc()
		req.reply = reply{wire: wire, shared: true}
		return
	}
	s.metrics.packedMisses.Inc()
	s.next.serve(ctx, req)
	s.keep(key, serial, &req.reply)
}

// keep packs r and keeps it when it is exact. Out of line for the reason
// given at checkStep.turnAway.
//
//go:noinline
func (s *packedStep) keep(key answerKey, serial uint32, r *reply) {
	// A change that landed while the reply was built has made the version
	// stale already: such a reply goes out but is not kept.
	if r.msg == nil || !r.version.Current() || !exactForKey(r) {
		return
	}
	wire, err := r.msg.Pack()
	if err != nil {
		return
	}
	s.cache.put(key, r.version, serial, wire)
	*r = reply{wire: wire} // Packed from this request's reply: it has its id.
}

// exactForKey reports whether r, built from the records alone, is the
// reply to every request with its key, over either transport.
func exactForKey(r *reply) bool {
	m := r.msg
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return false
	}
	if m.Truncated || m.Compress {
		return false // Both mean over 512 bytes, where the transport and the client's buffer decide.
	}
	return !r.shuffled
}

// packedAnswers keeps in-zone address replies in wire form, so a repeated
// query costs one map probe and a copy instead of an index walk, a message
// and its packing. This is the hot path of a cluster: pods ask for the same
// service names over and over.
//
// It is exact, not a TTL cache: an entry holds the Version of the records
// it was built from, and is served only while that is current. A change at
// or below the name (or, for NXDOMAIN, below the name's deepest existing
// ancestor) retires it; changes to other services leave it be, so a busy
// cluster's churn does not empty the cache. Only A and AAAA replies built
// from the records alone qualify, answers, NODATA and NXDOMAIN alike;
// replies with a CNAME chain (which may end upstream), and those shuffled
// per query, are built every time (see Resolver.addressAnswer and
// packedStep).
type packedAnswers struct {
	limit int

	mu      sync.RWMutex
	entries map[answerKey]packedAnswer
}

// answerKey is everything in a request that shapes a cacheable reply: the
// name (already lowercase: see answerKeyOf), the type, the RD and CD bits
// that the reply echoes, and the UDP size its OPT record advertises (0:
// the request had no EDNS0, so neither has the reply).
type answerKey struct {
	name    string
	qtype   uint16
	rd, cd  bool
	udpSize uint16
}

type packedAnswer struct {
	version Version
	serial  uint32
	wire    []byte
}

// newPackedAnswers holds up to limit replies; 0 or less turns it off.
func newPackedAnswers(limit int) *packedAnswers {
	if limit <= 0 {
		return nil
	}
	return &packedAnswers{limit: limit, entries: make(map[answerKey]packedAnswer)}
}

// answerKeyOf says whether req may be answered from the cache, and under
// which key. It admits only what the checks and the CHAOS step pass on
// unchanged (see chain.go). Mixed-case names are left out: the reply must repeat the
// asker's spelling (0x20 resolvers check it), and a lowercase key could not.
func answerKeyOf(req *request) (answerKey, bool) {
	q := req.q()
	if len(req.msg.Question) != 1 || req.msg.Opcode != dns.OpcodeQuery || q.Qclass != dns.ClassINET ||
		(q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA) || req.mixedCase {
		return answerKey{}, false
	}
	key := answerKey{name: req.name, qtype: q.Qtype, rd: req.msg.RecursionDesired, cd: req.msg.CheckingDisabled}
	if opt := req.msg.IsEdns0(); opt != nil {
		if len(opt.Option) > 0 {
			return answerKey{}, false // Options (cookies, the stub loop marker) may change the reply.
		}
		key.udpSize = advertisedUDPSize(opt)
	}
	return key, true
}

// get returns the wire reply for key if the records it was built from are
// unchanged and it was built within the SOA serial's hour (negative
// replies carry the serial).
func (c *packedAnswers) get(key answerKey, serial uint32) []byte {
	c.mu.RLock()
	entry, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || entry.serial != serial || !entry.version.Current() {
		return nil
	}
	return entry.wire
}

// put stores wire, built from the records of version in the hour of
// serial, under key.
// When full, one entry goes: map iteration starts at a random place, so it
// is a random one.
func (c *packedAnswers) put(key answerKey, version Version, serial uint32, wire []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.limit {
		for victim := range c.entries {
			delete(c.entries, victim)
			break
		}
	}
	c.entries[key] = packedAnswer{version: version, serial: serial, wire: wire}
}

// Len is the number of entries, current or stale.
func (c *packedAnswers) Len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
