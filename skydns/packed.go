package skydns

import (
	"context"
	"encoding/binary"
	"hash/maphash"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/miekg/dns"
)

// packedStep answers repeated local queries (names in the domain, and PTR
// names of the reverse zones) from replies kept in wire form, and keeps
// the replies the steps after it built when they are exact: built from the
// records alone (every read the query made still current), the same for
// every request with the key, and the same over either transport (at most
// 512 bytes: neither truncated nor compressed). Only answers, NODATA and
// NXDOMAIN qualify. A reply shuffled by round robin is kept too: each hit
// shuffles its own copy (rrSpan).
type packedStep struct {
	cache *packedAnswers
	zone  *Resolver // Whose domain says which names are local.
	next  step
}

func (s *packedStep) serve(ctx context.Context, req *request) {
	key, ok := s.keyOf(req)
	if !ok {
		s.next.serve(ctx, req)
		return
	}
	serial := req.serial()
	entry, hit := packedAnswer{}, false
	if !req.inline.lookedForPacked() {
		entry, hit = req.inline.packedAnswer(s.cache, key, serial)
	}
	req.countLookup(hit)
	if hit {
		req.reply = reply{wire: entry.wire, shared: true, answers: entry.answers}
		return
	}
	s.next.serve(ctx, req)
	s.keep(key, serial, req)
}

// keyOf is answerKeyOf for the local names only: a name forwarded
// upstream is never kept, and looking it up would only count misses.
func (s *packedStep) keyOf(req *request) (answerKey, bool) {
	key, ok := answerKeyOf(req)
	return key, ok && (s.zone.inZone(req.name) || isReverse(req))
}

// keep packs req's reply and keeps it when it is exact. Out of line for
// the reason given at checkStep.turnAway.
//
//go:noinline
func (s *packedStep) keep(key answerKey, serial uint32, req *request) {
	r := &req.reply
	// A change that landed while the reply was built has made a read stale
	// already: such a reply goes out but is not kept.
	if r.msg == nil || !r.exact || !req.work.basis.current() || !exactForKey(r) {
		return
	}
	// Packed into the request's own buffer: put copies what it keeps, and
	// most misses of a mix larger than the cache are not kept.
	wire, err := r.msg.PackBuffer(req.packed[:cap(req.packed)])
	if err != nil {
		return
	}
	req.packed = wire
	entry := packedAnswer{basis: req.work.basis.reads, serial: serial, wire: wire}
	if r.shuffled {
		// Shuffled replies are fitted, so uncompressed: no name points
		// into the answers, and each answer's bytes stand alone.
		var ok bool
		if entry.answers, ok = answerSpan(wire); !ok || r.msg.Compress {
			return // Answers of unequal sizes: not shuffled in place, so built each time.
		}
	}
	s.cache.put(key, entry)
	*r = reply{wire: wire} // Packed from this request's reply: it has its id.
}

// exactForKey reports whether r, built from the records alone, is the
// reply to every request with its key, over either transport.
func exactForKey(r *reply) bool {
	m := r.msg
	if m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError {
		return false
	}
	// A reply the shaping step fitted (fromZone) is compressed or truncated
	// only past 512 bytes, where the transport and the client's buffer
	// decide. Others (PTR) are the same whatever the transport.
	return !r.fromZone || (!m.Truncated && !m.Compress)
}

// packedAnswers keeps local replies in wire form, so a repeated query costs
// one map probe and a copy instead of an index walk, a message and its
// packing. This is the hot path of a cluster: pods ask for the same
// service names over and over.
//
// It is exact, not a TTL cache: an entry holds the Version of each read
// it was built from, and is served only while all are current. A change
// at or below a name read (or, for one that does not exist, below its
// deepest existing ancestor) retires it; changes to other services leave
// it be, so a busy cluster's churn does not empty the cache. Every qtype
// qualifies, answers, NODATA and NXDOMAIN alike, when built from the
// records alone; replies that rest on upstream (a CNAME or a target
// outside the domain) or on a wildcard's walk are built every time (see
// Resolver.records and lookupUpstream).
//
// It is split into shards by a hash of the name, each with its own lock,
// so that cores reading at once seldom touch the same lock word: a read
// lock is an atomic add on it, and on a single lock that cache line
// passes between the cores on every query (docs/benchmarks-cores.md).
type packedAnswers struct {
	seed   maphash.Seed
	shards []packedShard
	// names are the shards' name filters, one each, apart from the shards:
	// their slice headers are only read, while a shard's cache lines are
	// written by its lock and its doorkeeper.
	names []nameFilter
}

// packedShard is one lock and its entries, padded to a multiple of 128
// bytes so that no two shards' locks share a cache line (or the pair the
// adjacent-line prefetcher fetches together).
type packedShard struct {
	shardState
	_ [128 - unsafe.Sizeof(shardState{})%128]byte
}

type shardState struct {
	mu      sync.RWMutex
	entries map[answerKey]packedAnswer
	limit   int
	door    doorkeeper // Read and written under mu's write lock only.
	gone    int        // Entries let go since the shard's name filter was made afresh: under the write lock.
}

// packedShards is the number of shards of a cache of at least
// minShardedLimit entries; a smaller one has a single shard, so its limit
// is exact.
const (
	packedShards    = 32
	minShardedLimit = 1024
)

// answerKey is everything in a request that shapes a cacheable reply: the
// name (already lowercase: see answerKeyOf), the type, the RD and CD bits
// that the reply echoes, the UDP size its OPT record advertises (0: the
// request had no EDNS0, so neither has the reply), and the DO bit of that
// OPT record (bit 15 of its TTL field, RFC 3225), which decides whether a
// signed zone signs the reply (-dnssec): a DO reply never goes to a query
// without DO, nor the reverse. DO is in the key signed or not, so the key
// is the same function of the request's bytes either way. The fields after
// name are in an order without padding between them: the map then hashes
// and compares them as one run of bytes.
type answerKey struct {
	name       string
	qtype      uint16
	udpSize    uint16
	rd, cd, do bool
}

type packedAnswer struct {
	basis   []Version
	serial  uint32
	wire    []byte
	answers rrSpan // Set when the answers are shuffled for each query.
}

// newPackedAnswers holds up to limit replies; 0 or less turns it off.
func newPackedAnswers(limit int) *packedAnswers {
	if limit <= 0 {
		return nil
	}
	n := 1
	if limit >= minShardedLimit {
		n = packedShards
	}
	c := &packedAnswers{seed: maphash.MakeSeed(), shards: make([]packedShard, n), names: make([]nameFilter, n)}
	for i := range c.shards {
		// Each holds its share, rounded up: up to limit + n - 1 in all.
		perShard := (limit + n - 1) / n
		c.shards[i] = packedShard{shardState: shardState{limit: perShard, entries: make(map[answerKey]packedAnswer)}}
		c.names[i] = newNameFilter(perShard)
	}
	return c
}

// shardOf is the shard of a key whose name hashes to h.
func (c *packedAnswers) shardOf(h uint64) *packedShard { return &c.shards[h%uint64(len(c.shards))] }

// namesOf is the name filter of shardOf(h).
func (c *packedAnswers) namesOf(h uint64) *nameFilter { return &c.names[h%uint64(len(c.names))] }

func (c *packedAnswers) nameHash(key answerKey) uint64 { return maphash.String(c.seed, key.name) }

// capacity is how many replies c holds at most.
func (c *packedAnswers) capacity() int { return c.shards[0].limit * len(c.shards) }

// answerKeyOf says whether req may be answered from the cache, and under
// which key. It admits only what the checks and the CHAOS step pass on
// unchanged (see chain.go). Mixed-case names are left out: the reply must
// repeat the asker's spelling (0x20 resolvers check it), and a lowercase
// key could not.
//
// EDNS0 options are not part of the key, as no step that builds a local
// reply reads them: fit gives the reply an OPT record of its own, with
// none, so a client's DNS cookie goes unanswered, as RFC 7873 5.2 lets a
// server without cookies do. The one option read, the stub loop marker
// that the checks drop, keeps a request out.
func answerKeyOf(req *request) (answerKey, bool) {
	q := req.q()
	if len(req.msg.Question) != 1 || req.msg.Opcode != dns.OpcodeQuery || q.Qclass != dns.ClassINET ||
		refusedType(q.Qtype) || req.mixedCase {
		return answerKey{}, false
	}
	key := answerKey{name: req.name, qtype: q.Qtype, rd: req.msg.RecursionDesired, cd: req.msg.CheckingDisabled}
	if opt := req.msg.IsEdns0(); opt != nil {
		if stubLoopIn(opt) {
			return answerKey{}, false
		}
		key.udpSize, key.do = advertisedUDPSize(opt), opt.Do()
	}
	return key, true
}

// get returns the entry for key if the records it was built from are
// unchanged and it was built within the SOA serial's hour (negative
// replies carry the serial).
func (c *packedAnswers) get(key answerKey, serial uint32) (packedAnswer, bool) {
	h := c.nameHash(key)
	if !c.mayHold(h) {
		return packedAnswer{}, false
	}
	return c.from(c.shardOf(h), key, serial)
}

// mayHold is false when c holds no reply for a name hashing to nameHash:
// a cheaper answer than the probe, which at 100,000 names asked in turn
// mostly misses. A lookup that has it true goes on to from.
func (c *packedAnswers) mayHold(nameHash uint64) bool { return c.namesOf(nameHash).mayHold(nameHash) }

func (c *packedAnswers) from(sh *packedShard, key answerKey, serial uint32) (packedAnswer, bool) {
	sh.mu.RLock()
	entry, ok := sh.entries[key]
	sh.mu.RUnlock()
	if !ok || !entry.current(serial) {
		return packedAnswer{}, false
	}
	return entry, true
}

// current says whether e may answer a query at the SOA serial serial.
func (e *packedAnswer) current(serial uint32) bool {
	return e.serial == serial && allCurrent(e.basis)
}

// put stores a copy of entry under key (its basis and wire are copied,
// so the caller may reuse theirs). A full shard makes room for a new key (a
// random entry going) only when the key missed recently before
// (doorkeeper): a name asked for over and over gets in at its second
// miss, while a mix of more names than the cache holds, each asked again
// only after many others (a uniform mix over 100,000 services), does not
// swap one entry for another on every miss at no gain in hits: the swap
// (a delete and an insert in a full map, and the garbage of the entry
// evicted, which the collector finds by scanning the index's heap) costs
// a quarter of such a miss (BenchmarkServeMany). An entry already held is
// always replaced, so a stale one never stays.
func (c *packedAnswers) put(key answerKey, entry packedAnswer) {
	nameHash := c.nameHash(key) // Once, for the shard and the doorkeeper.
	sh := c.shardOf(nameHash)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, held := sh.entries[key]; !held && len(sh.entries) >= sh.limit && !sh.door.admit(keyHash(key, nameHash), sh.limit) {
		return
	}
	entry.basis, entry.wire = slices.Clone(entry.basis), slices.Clone(entry.wire)
	names := c.namesOf(nameHash)
	names.add(nameHash)
	if !putBounded(sh.entries, key, entry, sh.limit) {
		return
	}
	if sh.gone++; sh.gone >= sh.limit {
		sh.gone = 0
		names.remake(func(yield func(uint64) bool) {
			for k := range sh.entries {
				if !yield(c.nameHash(k)) {
					return
				}
			}
		})
	}
}

// nameFilter lets a lookup pass a shard by without its lock or its map
// when no entry has the name: a bit per place, 8 to 16 places for each
// entry the shard holds (a power of two of words), the place chosen by the
// name's hash and its bit set when an entry is put. A bit is never
// cleared for an entry that goes (another name may have set it too):
// once the shard has let go of as many entries as it holds, the filter
// is made afresh from what it holds (remake), a word at a time, so that
// a lookup meanwhile sees only bits of names gone being cleared, never a
// held name's. A full shard's names set about one bit in nine, and up to
// one in five with the names let go since the remaking: as many lookups
// of a name not held probe the map anyway.
type nameFilter struct {
	bits []atomic.Uint64 // Read without the shard's lock; written under its write lock.
}

func newNameFilter(limit int) nameFilter {
	n := 1
	for n*64 < limit*8 {
		n *= 2
	}
	return nameFilter{bits: make([]atomic.Uint64, n)}
}

// place is the bit of a name hashing to h, from the hash's upper half:
// its lower bits chose the shard and a reader's near slot.
func (f *nameFilter) place(h uint64) (word int, bit uint64) {
	i := (h >> 32) & uint64(len(f.bits)*64-1)
	return int(i / 64), 1 << (i % 64)
}

func (f *nameFilter) mayHold(h uint64) bool {
	word, bit := f.place(h)
	return f.bits[word].Load()&bit != 0
}

func (f *nameFilter) add(h uint64) {
	word, bit := f.place(h)
	if f.bits[word].Load()&bit == 0 { // Most puts find it set: no write, so the line stays shared.
		f.bits[word].Or(bit)
	}
}

// remake sets the bits of the hashes held, and only those: made aside,
// then stored a word at a time. Every held name's bit is set already, so
// each store only clears bits.
func (f *nameFilter) remake(held iter.Seq[uint64]) {
	fresh := make([]uint64, len(f.bits))
	for h := range held {
		word, bit := f.place(h)
		fresh[word] |= bit
	}
	for i, w := range fresh {
		f.bits[i].Store(w)
	}
}

// keyHash is a hash of the whole key, for the doorkeeper: the name's
// hash (whose low bits chose the shard, so are the same for all of a
// shard's keys) with the rest of the key folded in, then mixed so that
// every bit depends on every other (splitmix64's finalizer).
func keyHash(key answerKey, nameHash uint64) uint64 {
	h := nameHash ^ uint64(key.qtype)<<48 ^ uint64(key.udpSize)<<32 ^
		boolBits(key.rd)<<2 ^ boolBits(key.cd)<<1 ^ boolBits(key.do)
	h = (h ^ h>>30) * 0xbf58476d1ce4e5b9
	h = (h ^ h>>27) * 0x94d049bb133111eb
	return h ^ h>>31
}

func boolBits(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// doorkeeper remembers the keys a full shard turned away lately, as two
// bits each of a Bloom filter of doorBitsPerKey bits for each key the
// shard holds, and forgets them all once it has turned away as many as
// the shard holds: a key asked for again within that many misses is let
// in. A false positive (about one in twenty at the filter's fullest) lets
// in a key at its first miss, as if the shard had room.
type doorkeeper struct {
	bits   []uint64 // Made at the first key turned away.
	turned int      // Keys turned away since the bits were last cleared.
}

// doorBitsPerKey is the filter's size per key of the shard: with two
// bits a key, about 5% false positives when full.
const doorBitsPerKey = 8

// admit reports whether the key of hash h missed since the bits were last
// cleared, and notes this miss otherwise; limit is the shard's.
func (d *doorkeeper) admit(h uint64, limit int) bool {
	if d.bits == nil {
		d.bits = make([]uint64, (max(limit, 8)*doorBitsPerKey+63)/64)
	}
	i, j := d.positions(h)
	if d.has(i) && d.has(j) {
		return true
	}
	if d.turned >= limit {
		clear(d.bits)
		d.turned = 0
	}
	d.bits[i/64] |= 1 << (i % 64)
	d.bits[j/64] |= 1 << (j % 64)
	d.turned++
	return false
}

func (d *doorkeeper) has(bit uint64) bool { return d.bits[bit/64]&(1<<(bit%64)) != 0 }

func (d *doorkeeper) positions(h uint64) (i, j uint64) {
	n := uint64(len(d.bits)) * 64
	return h % n, (h >> 32) % n
}

// putBounded stores v under k in m, which holds at most limit entries:
// when full, one entry goes, and evicted says so. Map iteration starts at
// a random place, so it is a random one, at no cost of bookkeeping per
// entry.
func putBounded[K comparable, V any](m map[K]V, k K, v V, limit int) (evicted bool) {
	if _, ok := m[k]; !ok && len(m) >= limit {
		for victim := range m {
			delete(m, victim)
			evicted = true
			break
		}
	}
	m[k] = v
	return evicted
}

// Len is the number of entries, current or stale.
func (c *packedAnswers) Len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

// maxBasis is how many distinct reads a kept reply may rest on. A name,
// its CNAME targets or an SRV record's targets: a reply that reads more
// seldom fits in 512 bytes anyway.
const maxBasis = 8

// basis is what a query's reply rests on: the Version of each distinct
// index read. A read not from the index (upstream, a wildcard's walk)
// adds the zero Version, never current, and so does any past maxBasis. A
// pooled request keeps the slice's array from query to query (reset), so
// noting reads does not allocate, and a reset clears a slice header, not
// an array of pointers.
type basis struct {
	reads    []Version
	overflow bool
}

func (s *basis) add(v Version) {
	switch {
	case slices.Contains(s.reads, v): // A name read twice, as by a CNAME loop.
	case len(s.reads) == maxBasis:
		s.overflow = true
	default:
		s.reads = append(s.reads, v)
	}
}

func (s *basis) current() bool { return !s.overflow && allCurrent(s.reads) }

func allCurrent(vs []Version) bool {
	for _, v := range vs {
		if !v.Current() {
			return false
		}
	}
	return true
}

// rrSpan is where the answer records of a packed reply lie: n records of
// size bytes each from start. In an uncompressed reply each record's bytes
// stand alone (no other name points into them), so swapping two of them
// swaps the records, as round robin's shuffle of the built reply would.
type rrSpan struct {
	start, size, n int
}

// shuffle puts the records of s in b, a copy of the reply, in a random
// order: the permutation roundRobin draws when it builds one.
func (s rrSpan) shuffle(b []byte) {
	if s.n < 2 {
		return
	}
	rand.Shuffle(s.n, func(i, j int) { swapBytes(b[s.start+i*s.size:][:s.size], b[s.start+j*s.size:][:s.size]) })
}

// swapBytes swaps x and y, of one length, through a buffer on the stack,
// so that copy moves them a word at a time rather than a byte.
func swapBytes(x, y []byte) {
	var tmp [64]byte
	for len(x) > 0 {
		n := copy(tmp[:], x)
		copy(x, y[:n])
		copy(y, tmp[:n])
		x, y = x[n:], y[n:]
	}
}

// answerSpan finds the answer records of wire, a reply with one question;
// false unless they are all one size, or if a name has a compression
// pointer.
func answerSpan(wire []byte) (rrSpan, bool) {
	if len(wire) < 12 || binary.BigEndian.Uint16(wire[4:]) != 1 {
		return rrSpan{}, false
	}
	off, ok := skipName(wire, 12)
	if !ok {
		return rrSpan{}, false
	}
	s := rrSpan{start: off + 4, n: int(binary.BigEndian.Uint16(wire[6:]))} // Past the question's type and class.
	off = s.start
	for i := range s.n {
		end, ok := skipName(wire, off)
		if !ok || end+10 > len(wire) {
			return rrSpan{}, false
		}
		end += 10 + int(binary.BigEndian.Uint16(wire[end+8:])) // Type, class, TTL, rdlength, then the data.
		if end > len(wire) || (i > 0 && end-off != s.size) {
			return rrSpan{}, false
		}
		s.size, off = end-off, end
	}
	return s, true
}

// skipName is the offset past the uncompressed name at off in wire.
func skipName(wire []byte, off int) (int, bool) {
	for off < len(wire) {
		switch l := int(wire[off]); {
		case l == 0:
			return off + 1, true
		case l&0xC0 != 0:
			return 0, false // A pointer, or a label type of no use here.
		default:
			off += 1 + l
		}
	}
	return 0, false
}
