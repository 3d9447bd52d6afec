package skydns

import (
	"encoding/binary"
	"sync"

	"github.com/miekg/dns"
)

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
// cacheableReply).
type packedAnswers struct {
	limit   int
	buffers sync.Pool // *[]byte scratch for the id patch, one per write in flight.

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
	return &packedAnswers{
		limit:   limit,
		entries: make(map[answerKey]packedAnswer),
		buffers: sync.Pool{New: func() any { b := make([]byte, 0, dns.MinMsgSize); return &b }},
	}
}

// answerKeyOf says whether req may be answered from the cache, and under
// which key. Mixed-case names are left out: the reply must repeat the
// asker's spelling (0x20 resolvers check it), and a lowercase key could not.
func answerKeyOf(req *dns.Msg) (answerKey, bool) {
	q := req.Question[0]
	if req.Opcode != dns.OpcodeQuery || q.Qclass != dns.ClassINET ||
		(q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA) || hasUpperASCII(q.Name) {
		return answerKey{}, false
	}
	key := answerKey{name: q.Name, qtype: q.Qtype, rd: req.RecursionDesired, cd: req.CheckingDisabled}
	if opt := req.IsEdns0(); opt != nil {
		if len(opt.Option) > 0 {
			return answerKey{}, false // Options (cookies, the stub loop marker) may change the reply.
		}
		key.udpSize = advertisedUDPSize(opt)
	}
	return key, true
}

// cacheableReply reports whether m, a finished reply built from the index
// alone, is the same for every request with its key, over either
// transport. (Built from the index alone, it is an answer, NODATA or
// NXDOMAIN: a SERVFAIL means the records were not there to build from.)
func cacheableReply(m *dns.Msg, roundRobin bool) bool {
	if m.Truncated || m.Compress {
		return false // Both mean over 512 bytes, where the transport and the client's buffer decide.
	}
	return !roundRobin || len(m.Answer) < 2 // Else shuffled anew for every query.
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

// write sends wire to w with the request's id. The shared bytes are never
// written to: the id goes into a pooled copy.
func (c *packedAnswers) write(w dns.ResponseWriter, id uint16, wire []byte) error {
	bp := c.buffers.Get().(*[]byte)
	b := append((*bp)[:0], wire...)
	binary.BigEndian.PutUint16(b, id)
	_, err := w.Write(b)
	*bp = b
	c.buffers.Put(bp)
	return err
}

// packedRcode reads the rcode from a packed reply's header (no EDNS0
// extended rcode: packed replies are NOERROR or NXDOMAIN).
func packedRcode(wire []byte) int { return int(wire[3] & 0x0f) }

// packedAnswerCount reads ANCOUNT from a packed reply's header.
func packedAnswerCount(wire []byte) int { return int(binary.BigEndian.Uint16(wire[6:])) }

// advertisedUDPSize is the buffer size a reply's OPT record announces to a
// request with opt: the client's, at least 512 and at most 4096.
func advertisedUDPSize(opt *dns.OPT) uint16 {
	return uint16(min(max(int(opt.UDPSize()), dns.MinMsgSize), 4096))
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}
