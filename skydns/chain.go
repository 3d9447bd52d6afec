package skydns

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/miekg/dns"
)

// step is one link of the query chain. Each step answers the request
// itself or hands it to the next one, and may change the reply on its way
// back. The chain is put together in one place, newChain, in the order the
// files describe:
//
//	checks.go   one question, no looped stub query, no ANY
//	chaos.go    CHAOS-class names (version.bind and friends)
//	packed.go   in-zone A/AAAA replies kept in wire form, exact for the records
//	shape.go    dedup, minimum TTL, round robin, fit to the client's buffer
//	stubs.go    zones delegated to their own nameservers (-stubzones)
//	reverse.go  PTR names held in the records
//	zone.go     the cluster domain: the resolver, and its errors as rcodes
//	forward.go  everything else, to the upstream nameservers
type step interface {
	serve(ctx context.Context, req request) reply
}

// request is one query on its way down the chain. It is passed by value:
// through an interface call a pointer would escape to the heap, once per
// query.
type request struct {
	msg       *dns.Msg
	q         dns.Question // msg.Question[0]; zero when there is not exactly one.
	name      string       // q.Name in lowercase.
	mixedCase bool         // q.Name had upper-case letters.
	tcp       bool
	start     time.Time // When it arrived; also the clock of the SOA serial.
}

// newRequest is m as the chain sees it. DNS names compare without regard
// to ASCII case (RFC 4343), and almost every name arrives in lowercase:
// one scan decides, and only a mixed-case name is copied.
func newRequest(m *dns.Msg, tcp bool, start time.Time) request {
	req := request{msg: m, tcp: tcp, start: start}
	if len(m.Question) == 1 {
		req.q = m.Question[0]
		req.name = req.q.Name
		if hasUpperASCII(req.name) {
			req.mixedCase, req.name = true, lowerASCII(req.name)
		}
	}
	return req
}

func (r request) proto() string {
	if r.tcp {
		return "tcp"
	}
	return "udp"
}

// serial is the SOA serial for this request: the hour it arrived in.
func (r request) serial() uint32 { return serialAt(r.start) }

// serialAt is the SOA serial at t: t truncated to the hour, as in SkyDNS
// (the data changes continuously and nothing transfers zones).
func serialAt(t time.Time) uint32 { return uint32(t.Truncate(time.Hour).Unix()) }

// reply is what a step hands back up. With neither msg nor wire the
// request is dropped unanswered.
type reply struct {
	msg *dns.Msg
	// wire is the reply already packed. shared: it was packed for another
	// request and needs this one's id.
	wire   []byte
	shared bool

	// fromZone marks a reply the zone step built from the records, for the
	// shaping step to post-process.
	fromZone bool
	// version is the Version of the records the reply was built from, when
	// those alone decide it; the zero Version otherwise. Only the packed
	// step reads it.
	version Version
	// shuffled: the answers' order is drawn anew for each query.
	shuffled bool
}

// summary is the rcode and answer count, for the metrics and the log.
func (r reply) summary() (rcode, answers int) {
	if r.wire != nil {
		return int(r.wire[3] & 0x0f), int(binary.BigEndian.Uint16(r.wire[6:]))
	}
	return r.msg.Rcode, len(r.msg.Answer)
}

// caches are the chain's stores, which the handler reports on.
type caches struct {
	packed    *packedAnswers // nil: --answer-cache=0.
	responses *responseCache // nil: -rcache=0.
}

// newChain wires the steps that opts turn on, last first.
func newChain(opts Options, deps Deps) (step, caches) {
	up := newUpstream(opts.Forward, deps.Exchange, deps.Metrics, deps.Log)
	res := newResolver(opts.Zone, deps.Index, up.lookup())
	fwd := newForwardStep(opts.Forward, up, deps.Clock)
	var next step = fwd
	next = newZoneStep(opts.Zone, res, next)
	next = &reverseStep{res: res, next: next}
	if opts.StubZones {
		next = &stubStep{zones: newStubZones(opts.Zone.Domain, deps.Index), up: up, next: next}
	}
	next = &shapeStep{opts: opts.Reply, next: next}
	packed := newPackedAnswers(opts.AnswerCache)
	if packed != nil {
		next = &packedStep{cache: packed, metrics: deps.Metrics, next: next}
	}
	next = &chaosStep{domain: opts.Zone.Domain, next: next}
	return &checkStep{dropStubLoops: opts.StubZones, next: next}, caches{packed: packed, responses: fwd.cache}
}
