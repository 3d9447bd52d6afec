package skydns

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// responseCache keeps forwarded answers for a fixed time (--rcache-ttl), up
// to --rcache entries. Local answers never go here, where a TTL would let
// them outlive a change to the records; packedAnswers keeps those exactly.
//
// SkyDNS's cache emptied itself whenever it filled; this one evicts the
// oldest-expiring entry it finds in a small sample instead.
type responseCache struct {
	capacity int
	ttl      time.Duration
	now      func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

// cacheKey is everything in a request that the upstream's reply may
// depend on: the question, the header bits a server echoes or acts on
// (opcode, RD, CD), whether the request had EDNS0, its DO bit and buffer
// size, and the transport. A request with EDNS0 options (cookies, ...) is
// never cached: its reply may carry something of that client's alone.
type cacheKey struct {
	name    string
	qtype   uint16
	qclass  uint16
	opcode  int
	rd, cd  bool
	edns    bool
	do      bool
	udpSize uint16
	tcp     bool
}

type cacheEntry struct {
	msg     *dns.Msg
	expires time.Time
}

// evictionSample is how many entries are compared to pick one to evict.
const evictionSample = 8

func newResponseCache(capacity int, ttl time.Duration, now func() time.Time) *responseCache {
	if capacity <= 0 {
		return nil
	}
	return &responseCache{capacity: capacity, ttl: ttl, now: now, entries: make(map[cacheKey]cacheEntry)}
}

// keyOf is req's key, or false when req is not to be cached.
func keyOf(r *request) (cacheKey, bool) {
	req, q := r.msg, r.q()
	k := cacheKey{
		name: r.name, qtype: q.Qtype, qclass: q.Qclass,
		opcode: req.Opcode, rd: req.RecursionDesired, cd: req.CheckingDisabled, tcp: r.tcp,
	}
	if opt := req.IsEdns0(); opt != nil {
		if len(opt.Option) > 0 {
			return cacheKey{}, false
		}
		k.edns, k.do, k.udpSize = true, opt.Do(), opt.UDPSize()
	}
	return k, true
}

// get returns a copy of the live entry at k, with req's id.
func (c *responseCache) get(k cacheKey, req *dns.Msg) *dns.Msg {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !c.now().Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	m.Id = req.Id
	m.Question = req.Question // Keep the asker's letter case.
	return m
}

// put keeps m, a reply from upstream, at k.
func (c *responseCache) put(k cacheKey, m *dns.Msg) {
	if c == nil || m.Truncated || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.capacity {
		c.evictOne()
	}
	c.entries[k] = cacheEntry{msg: m.Copy(), expires: c.now().Add(c.ttl)}
}

// evictOne drops the entry expiring first among a few picked by map order.
func (c *responseCache) evictOne() {
	var victim cacheKey
	var soonest time.Time
	n := 0
	for k, e := range c.entries {
		if n == 0 || e.expires.Before(soonest) {
			victim, soonest = k, e.expires
		}
		if n++; n == evictionSample {
			break
		}
	}
	delete(c.entries, victim)
}

func (c *responseCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
