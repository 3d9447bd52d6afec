package skydns

import (
	"context"
	"encoding/binary"
	"net"
	"time"

	"github.com/miekg/dns"
)

// step is one link of the query chain. Each step answers the request
// itself or hands it to the next one, and may change the reply on its way
// back. The chain is put together in one place, newChain, in the order the
// files describe:
//
//	packed.go   local replies kept in wire form, exact for the records
//	checks.go   one question, no looped stub query, no ANY
//	loop.go     the forwarding-loop probes (--loop-detect), never forwarded
//	chaos.go    CHAOS-class names (version.bind and friends)
//	shape.go    dedup, minimum TTL, round robin, DNSSEC signatures
//	            (sign.go), fit to the client's buffer
//	stubs.go    zones delegated to their own nameservers (-stubzones)
//	reverse.go  PTR names held in the records
//	zone.go     the cluster domain: the resolver, and its errors as rcodes
//	forward.go  everything else, to the upstream nameservers
//
// The packed answers come first, ahead of the checks, because they are the
// path of almost every query and their key admits only requests that every
// check, the loop probes and the CHAOS step would pass on unchanged: one
// question for a name in the domain (or a PTR in a reverse zone), class
// IN, a type the checks do not refuse, no stub loop marker. A hit is then
// one step deep.
type step interface {
	serve(ctx context.Context, req *request)
}

// request is one query on its way down the chain, and its reply on the way
// back: a step answers by setting reply. It comes from a pool and is
// passed by pointer, so a step's frame holds neither a copy of it nor of a
// reply (each query runs on a fresh goroutine whose stack should not have
// to grow).
type request struct {
	msg       *dns.Msg
	name      string // The question's name in lowercase.
	mixedCase bool   // The name had upper-case letters.
	tcp       bool
	client    net.Addr      // Who asked: the autopath step reads it.
	inline    *inlineQuery  // Set while a UDP reader serves it: see countRequest.
	shard     *counterShard // The pooled request's: see countRequest.
	start     time.Time     // When it arrived; also the clock of the SOA serial.
	work      budget        // What the resolver has spent on it (budget.go).
	packed    []byte        // The packed step's buffer, kept from query to query (reset).

	reply reply
	// ownReply is the message of the first reply built for the request
	// (newReply), so that a reply costs no allocation of its own; taken
	// says it is in use.
	ownReply    dns.Msg
	ownQuestion [1]dns.Question // ownReply's question (setReply).
	taken       bool
}

// newReply is an empty message for a reply to r: r's own the first time,
// a new one after that (autopath builds several replies to one request
// and keeps the first while it tries the others). A reply lives no
// longer than its request: the handler sends it, or packs it, before
// the request goes back to the pool, and no step keeps a message it
// built itself.
func (r *request) newReply() *dns.Msg {
	if r.taken {
		return new(dns.Msg)
	}
	r.taken = true
	return &r.ownReply
}

// setReply is m.SetReply(r.msg), m being a reply newReply gave, but
// with the request's own reply's question in the request's own array,
// so that the reply allocates nothing for it.
func (r *request) setReply(m *dns.Msg) {
	if m != &r.ownReply || len(r.msg.Question) == 0 {
		m.SetReply(r.msg)
		return
	}
	m.SetReply(&dns.Msg{MsgHdr: r.msg.MsgHdr}) // The header alone: SetReply would copy the question into a new slice.
	r.ownQuestion[0] = r.msg.Question[0]
	m.Question = r.ownQuestion[:]
}

// reset makes r the request for m, in place, keeping only the arrays its
// budget notes reads in (basis) and the packed step packs in. DNS names
// compare without regard to ASCII case (RFC 4343), and almost every name
// arrives in lowercase: one scan decides, and only a mixed-case name is
// copied.
func (r *request) reset(m *dns.Msg, tcp bool, start time.Time) {
	reads, packed := r.work.basis.reads[:0], r.packed[:0]
	*r = request{msg: m, tcp: tcp, start: start, packed: packed, shard: r.shard}
	r.work.basis.reads = reads
	if len(m.Question) == 1 {
		r.name = m.Question[0].Name
		if hasUpperASCII(r.name) {
			r.mixedCase, r.name = true, lowerASCII(r.name)
		}
	}
}

// countRequest, countResponse and countLookup note the request's counts
// where they go: into the tally of the UDP reader serving it, which that
// reader alone writes, or else (TCP, and a query that has left its reader
// to wait upstream) into the counter shard of the pooled request.

func (r *request) countRequest(qtype uint16) {
	if t := r.inline.tally(); t != nil {
		t.request(qtype)
	} else {
		r.shard.request(r.tcp, qtype)
	}
}

// countResponse is false, and nothing noted, for an rcode the shards do
// not count (shardRcodes).
func (r *request) countResponse(rcode int, seconds float64) bool {
	if t := r.inline.tally(); t != nil {
		return t.response(rcode, seconds)
	}
	return r.shard.response(r.tcp, rcode, seconds)
}

func (r *request) countLookup(hit bool) {
	switch t := r.inline.tally(); {
	case t != nil && hit:
		t.hits++
	case t != nil:
		t.misses++
	default:
		r.shard.lookup(hit)
	}
}

// q is the question, or the zero one when there is not exactly one.
func (r *request) q() dns.Question {
	if len(r.msg.Question) != 1 {
		return dns.Question{}
	}
	return r.msg.Question[0]
}

func (r *request) proto() string {
	if r.tcp {
		return "tcp"
	}
	return "udp"
}

// serial is the SOA serial for this request: the hour it arrived in.
func (r *request) serial() uint32 { return serialAt(r.start) }

// serialAt is the SOA serial at t: t truncated to the hour, as in SkyDNS
// (the data changes continuously and nothing transfers zones).
func serialAt(t time.Time) uint32 { return uint32(t.Truncate(time.Hour).Unix()) }

// reply is what the steps answered. With neither msg nor wire the request
// is dropped unanswered.
type reply struct {
	msg *dns.Msg
	// wire is the reply already packed. shared: it was packed for another
	// request and needs this one's id.
	wire   []byte
	shared bool

	// fromZone marks a reply the zone step built from the records, for the
	// shaping step to post-process.
	fromZone bool
	// exact: the reply was built from the records alone, so the request's
	// answerKey and the reads its budget noted decide it. Only the packed
	// step reads it.
	exact bool
	// shuffled: the answers' order is drawn anew for each query.
	shuffled bool
	// answers, set on a shared wire reply that was shuffled when built:
	// where its answers lie, for the handler to shuffle the copy it sends.
	answers rrSpan
	// relayed marks a reply from upstream (or the response cache, or a
	// failure to get one), for the shaping step to fit to the client.
	relayed bool
}

// summary is the rcode and answer count, for the metrics and the log.
func (r *reply) summary() (rcode, answers int) {
	if r.wire != nil {
		return int(r.wire[3] & 0x0f), int(binary.BigEndian.Uint16(r.wire[6:]))
	}
	return r.msg.Rcode, len(r.msg.Answer)
}

// caches are the chain's state kept across queries: the stores, which the
// handler reports on, and the loop guard, whose probe Run starts.
type caches struct {
	packed    *packedAnswers // nil: --answer-cache=0.
	responses *responseCache // nil: -rcache=0.
	loop      *loopGuard     // nil: nothing forwarded, or --loop-detect=false.
}

// newChain wires the steps that opts turn on, last first.
func newChain(opts Options, deps Deps) (step, caches) {
	up := newUpstream(opts.Forward, deps.Exchange, deps.Metrics, deps.Log)
	up.loop = newLoopGuard(opts.Forward, deps.Exchange, deps.Metrics, deps.Log)
	res := newResolver(opts.Zone, deps.Index, up.lookup(), up.budget())
	fwd := newForwardStep(opts.Forward, up, deps.Clock)
	var next step = fwd
	next = newZoneStep(opts.Zone, res, deps.Metrics, next)
	next = &reverseStep{res: res, next: next}
	if opts.StubZones {
		next = &stubStep{zones: newStubZones(opts.Zone.Domain, deps.Index), up: up, next: next}
	}
	if opts.Autopath.Enabled {
		next = newAutopathStep(opts, deps, next)
	}
	next = &shapeStep{opts: opts.Reply, metrics: deps.Metrics, signer: newSigner(opts, res, deps.Index, deps), next: next}
	next = &chaosStep{domain: opts.Zone.Domain, next: next}
	if up.loop != nil {
		next = &loopStep{guard: up.loop, next: next}
	}
	next = &checkStep{dropStubLoops: opts.StubZones, next: next}
	packed := newPackedAnswers(opts.AnswerCache)
	if packed != nil {
		next = &packedStep{cache: packed, zone: res, next: next}
	}
	return next, caches{packed: packed, responses: fwd.cache, loop: up.loop}
}
