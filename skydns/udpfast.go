package skydns

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// The UDP reader's fast path: a packed reply found from the datagram's
// bytes, with no dns.Msg, no request and no trip down the chain. It
// answers only what ServeDNS would answer from the packed answers with
// the same bytes and the same accounting; everything else (a miss
// included, which the packed step then counts) goes to ServeDNS.

// packedFastPath says whether the handler's packed hits may skip ServeDNS:
// not without packed answers, and not at debug level, where every query
// is logged by ServeDNS.
func (h *Handler) packedFastPath() bool {
	return h.caches.packed != nil && !h.log.Enabled(context.Background(), slog.LevelDebug)
}

// answerPacked appends to buf the packed reply to the UDP query b, whose
// key packedKeyOf (or borrowedKeyOf) found, with b's id, and notes the request and the hit
// in t as ServeDNS counts them; the caller sends it and then calls
// accountPacked. ok is false, and nothing is noted, when the reply is not
// packed and current: ServeDNS is then to answer b, and need not look
// for the packed reply again (inlineQuery.packedMissed).
func (h *Handler) answerPacked(key answerKey, b, buf []byte, t *readerTally, near *nearAnswers) (reply []byte, start time.Time, ok bool) {
	start = h.clock()
	entry, ok := near.getBorrowed(h.caches.packed, key, serialAt(start))
	if !ok {
		return nil, time.Time{}, false
	}
	t.hit(key.qtype)
	reply = append(buf, entry.wire...)
	copy(reply, b[:2])           // The shared bytes stay as they are: the id goes into the copy.
	entry.answers.shuffle(reply) // A round-robin reply, shuffled as ServeDNS's writeShared does.
	return reply, start, true
}

// keyedQuery is the request a datagram with a key (packedKeyOf) unpacks
// into, held in place so that the reader's queries off the fast path do
// not allocate one each: exactly what dns.Msg.Unpack makes of it.
type keyedQuery struct {
	msg      dns.Msg
	question [1]dns.Question
	opt      dns.OPT
	extra    [1]dns.RR
	header   [dnsHeaderLen]byte // unpackHeader's, here rather than on the stack, which Unpack would make it leave.
}

// unpack makes q.msg the request b unpacks into; key is packedKeyOf(b).
// The name is key's, which holds the same text.
func (q *keyedQuery) unpack(b []byte, key answerKey) *dns.Msg {
	*q = keyedQuery{}
	unpackHeader(&q.msg, b, &q.header)
	q.question[0] = dns.Question{Name: key.name, Qtype: key.qtype, Qclass: dns.ClassINET}
	q.msg.Question = q.question[:]
	if be16(b, 10) == 1 { // The OPT, whose place packedKeyOf checked: the datagram's last 11 bytes.
		opt := b[len(b)-11:]
		q.opt = dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: be16(opt, 3), Ttl: binary.BigEndian.Uint32(opt[5:])}}
		q.extra[0] = &q.opt
		q.msg.Extra = q.extra[:]
		q.msg.Rcode |= q.opt.ExtendedRcode()
	}
	return &q.msg
}

// nearAnswers is a UDP reader's own copy of the packed replies it found
// last, looked at before the shared packed answers. A shard of those is
// behind a read-write lock, and taking the read lock writes the lock's
// word: two cores asking for the same hot name (every pod asks for
// kubernetes.default) would hand that cache line back and forth on every
// query, and a second core would add far less than a core's worth
// (BenchmarkServeAParallel/fast). A hit here writes no word outside the
// reader. A slot holds the shared entry itself, whose bytes are never
// written, and is served on the same terms: built within the serial's
// hour from reads that are all still current. An entry the shared cache
// has let go is therefore still exact here.
//
// The slots are made at the first lookup in a shared cache, sized from
// it (nearSlotsFor): the readers' copies together hold no more slots than
// --answer-cache, however many cores there are.
type nearAnswers struct {
	readers int            // Of the server: they share --answer-cache's slots.
	shared  *packedAnswers // What the slots were copied from; another handler's cache clears them.
	slots   []nearSlot
}

type nearSlot struct {
	key   answerKey
	entry packedAnswer
}

// maxNearSlots bounds a reader's slots (a power of two, a pair of them
// chosen by the name's hash): 104 bytes each, so at most about 420 KiB a reader,
// the shared bytes aside. A working set of up to about a thousand names
// hits there with few collisions; past that the slots only add a copy to
// each shared hit. minNearSlots is the fewest worth having.
const (
	maxNearSlots = 4096
	minNearSlots = 16
)

// nearSlotsFor is each of readers readers' share of a shared cache of
// capacity entries: the largest power of two within it, at most
// maxNearSlots, and 0 (no copy: the shared cache alone) below
// minNearSlots.
func nearSlotsFor(capacity, readers int) int {
	share := capacity / max(readers, 1)
	if share < minNearSlots {
		return 0
	}
	n := minNearSlots
	for n*2 <= share && n < maxNearSlots {
		n *= 2
	}
	return n
}

// newNearAnswers is the copy of one of readers readers; it holds nothing
// until its first lookup.
func newNearAnswers(readers int) *nearAnswers { return &nearAnswers{readers: readers} }

// get is shared.get(key, serial), from one of n's two slots for key
// when one holds a current entry for it, and copied into the first when
// it comes from shared (what the first held moving to the second). Two
// ways, because with one, two names of a working set that hash to the
// same slot take turns in it, and every turn is a trip to the shared
// shard's lock, a word both cores write (docs/benchmarks-cores.md).
func (n *nearAnswers) get(shared *packedAnswers, key answerKey, serial uint32) (packedAnswer, bool) {
	return n.lookup(shared, key, serial, false)
}

// getBorrowed is get for a key whose name is borrowed (borrowedKeyOf): a
// slot it fills keeps a copy.
func (n *nearAnswers) getBorrowed(shared *packedAnswers, key answerKey, serial uint32) (packedAnswer, bool) {
	return n.lookup(shared, key, serial, true)
}

func (n *nearAnswers) lookup(shared *packedAnswers, key answerKey, serial uint32, borrowed bool) (packedAnswer, bool) {
	if n.shared != shared {
		n.shared = shared
		n.slots = make([]nearSlot, nearSlotsFor(shared.capacity(), n.readers))
	}
	if len(n.slots) == 0 {
		return shared.get(key, serial)
	}
	h := shared.nameHash(key)
	if !shared.mayHold(h) {
		// Not in the shared cache, so most likely not here either: the
		// slot, at many names, is one more line fetched from memory.
		return packedAnswer{}, false
	}
	set := n.slots[h&uint64(len(n.slots)-1)&^1:][:2]
	for i := range set {
		if set[i].key == key && set[i].entry.current(serial) {
			return set[i].entry, true
		}
	}
	entry, ok := shared.from(shared.shardOf(h), key, serial) // mayHold passed above.
	if ok {
		if borrowed {
			key = ownName(key)
		}
		set[1], set[0] = set[0], nearSlot{key: key, entry: entry}
	}
	return entry, ok
}

// release lets go of the copy, for a handler with no fast path: the old
// shared cache and the entries held are then garbage.
func (n *nearAnswers) release() { n.shared, n.slots = nil, nil }

// accountPacked records a reply answerPacked made, once it has been sent
// (or failed to be), as ServeDNS's account does: its latency in t's shard
// at once, its rcode in t (or, one t does not count, in the metrics' own
// series).
func (h *Handler) accountPacked(start time.Time, reply []byte, t *readerTally) {
	rcode, seconds := int(reply[3]&0x0f), time.Since(start).Seconds()
	if !t.response(rcode, seconds) {
		h.metrics.response("udp", rcode, seconds)
	}
}

// readerTally is one UDP reader's accounting of the queries it serves,
// packed hits and through ServeDNS alike, so that serving them writes no
// word another core writes: latencies go into the reader's counter shard
// at once, and the counts of a batch into it once, at its end (addUp).
type readerTally struct {
	counts   *counterShard
	requests [len(countedQtypes) + 1]int // UDP's, as counterShard's.
	rcodes   [shardRcodes]int
	hits     int // Packed answers found...
	misses   int // ...and looked for in vain.
}

// request notes a query of qtype.
func (t *readerTally) request(qtype uint16) { t.requests[qtypeIndex(qtype)]++ }

// hit notes a query of qtype answered from the packed answers.
func (t *readerTally) hit(qtype uint16) {
	t.request(qtype)
	t.hits++
}

// response notes a reply with rcode, sent seconds after its query came;
// false, and nothing noted, for an rcode the shard does not count
// (shardRcodes), which the metrics' own series take.
func (t *readerTally) response(rcode int, seconds float64) bool {
	if rcode >= len(t.rcodes) {
		return false
	}
	t.rcodes[rcode]++
	t.counts.latency[protoIndex(false)].observe(seconds)
	return true
}

// newReaderTally accounts into a new shard of h's metrics, which every
// handler of a server shares.
func (h *Handler) newReaderTally() readerTally {
	return readerTally{counts: h.metrics.newShard()}
}

// addUp adds t to the reader's shard and clears it.
func (t *readerTally) addUp() {
	c := t.counts
	for i, n := range t.requests {
		addCount(&c.requests[protoIndex(false)][i], n)
	}
	for i, n := range t.rcodes {
		addCount(&c.rcodes[i], n)
	}
	addCount(&c.hits, t.hits)
	addCount(&c.misses, t.misses)
	*t = readerTally{counts: c}
}

// addCount adds n to c.
func addCount(c *atomic.Uint64, n int) {
	if n > 0 {
		c.Add(uint64(n))
	}
}

// dnsHeaderLen is the fixed header of every DNS message.
const dnsHeaderLen = 12

// packedKeyOf is answerKeyOf for a datagram that miekg/dns's server would
// accept and unpack into a request answerKeyOf admits, read from the bytes
// alone: a query (QR clear, opcode QUERY) with one IN question of a type
// answerKeyOf admits,
// no answer or authority records, at most an OPT record without options,
// and nothing after. Its name must be lowercase letters, digits, '-' and
// '_' (the only names that unpack to the same text without escapes, and
// a mixed-case one never has a packed reply). What it refuses is not
// wrong, only left to ServeDNS.
func packedKeyOf(b []byte) (answerKey, bool) {
	var text nameText
	key, name, ok := keyAndName(b, &text)
	key.name = string(name)
	return key, ok
}

// nameText is where a UDP reader writes the text of a datagram's name,
// so that a packed hit allocates nothing: borrowedKeyOf's key names it
// until the next datagram's.
type nameText [maxPlainName]byte

// borrowedKeyOf is packedKeyOf(b) with a name that is t's bytes: valid
// until t is written again, so a key kept past that (in a near slot, or
// by a query that goes on to ServeDNS) must own its name (ownName).
func (t *nameText) borrowedKeyOf(b []byte) (answerKey, bool) {
	key, name, ok := keyAndName(b, t)
	key.name = unsafe.String(unsafe.SliceData(name), len(name))
	return key, ok
}

// ownName is key with a name of its own.
func ownName(key answerKey) answerKey {
	key.name = strings.Clone(key.name)
	return key
}

// keyAndName is packedKeyOf's key but for its name, whose text it writes
// to text and returns.
func keyAndName(b []byte, text *nameText) (answerKey, []byte, bool) {
	if len(b) < dnsHeaderLen || b[2]&0xf8 != 0 || be16(b, 4) != 1 || be16(b, 6) != 0 || be16(b, 8) != 0 || be16(b, 10) > 1 {
		return answerKey{}, nil, false
	}
	n, off, ok := plainName(b, dnsHeaderLen, text)
	if !ok || len(b) < off+4 {
		return answerKey{}, nil, false
	}
	key := answerKey{qtype: be16(b, off), rd: b[2]&0x01 != 0, cd: b[3]&0x10 != 0}
	if be16(b, off+2) != dns.ClassINET || refusedType(key.qtype) {
		return answerKey{}, nil, false
	}
	off += 4
	if be16(b, 10) == 1 {
		// The OPT: root name, type, class (the UDP size), TTL, RDLENGTH 0.
		if len(b) != off+11 || b[off] != 0 || be16(b, off+1) != dns.TypeOPT || be16(b, off+9) != 0 {
			return answerKey{}, nil, false
		}
		key.udpSize = advertisedUDPSize(&dns.OPT{Hdr: dns.RR_Header{Class: be16(b, off+3)}})
		key.do = b[off+7]&0x80 != 0 // DO: the top bit of the flags, the TTL's low half.
	} else if len(b) != off {
		return answerKey{}, nil, false
	}
	return key, text[:n], true
}

// maxPlainName is the longest wire name plainName reads; longer ones (up
// to 255 octets) are left to miekg/dns's own limits.
const maxPlainName = 250

// plainName writes to text the uncompressed name at b[off:] as miekg/dns
// would present it ("a.b.") and returns its length and the offset past
// it; ok is false for the root, a compression pointer, or any byte
// plainLabelByte refuses.
func plainName(b []byte, off int, text *nameText) (n, end int, ok bool) {
	for {
		if off >= len(b) || n > maxPlainName-64 {
			return 0, 0, false
		}
		l := int(b[off])
		if l == 0 {
			break
		}
		if l > 63 || off+1+l > len(b) {
			return 0, 0, false
		}
		for _, c := range b[off+1 : off+1+l] {
			if !plainLabelByte(c) {
				return 0, 0, false
			}
		}
		n += copy(text[n:], b[off+1:off+1+l])
		text[n] = '.'
		n++
		off += 1 + l
	}
	if n == 0 {
		return 0, 0, false
	}
	return n, off + 1, true
}

// plainLabelByte: lowercase letters, digits, '-' and '_'.
func plainLabelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func be16(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }
