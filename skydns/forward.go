package skydns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// forwardStep is the last step: a name no earlier step answered is relayed
// to the upstream nameservers, through the response cache (-rcache), or
// is a SERVFAIL when there is nowhere to send it.
type forwardStep struct {
	up    *upstream
	cache *responseCache // nil: -rcache=0.
}

func newForwardStep(opts ForwardOptions, up *upstream, clock func() time.Time) *forwardStep {
	return &forwardStep{up: up, cache: newResponseCache(opts.CacheSize, opts.CacheTTL, clock)}
}

func (s *forwardStep) serve(ctx context.Context, req *request) {
	if !s.up.enabled() {
		req.reply = reply{msg: servfail(req.msg, !s.up.opts.NoRec), relayed: true}
		return
	}
	var key cacheKey
	cacheable := false
	if s.cache != nil { // -rcache=0, the default, needs no key.
		key, cacheable = keyOf(req) // Once, for the lookup and the keeping.
	}
	if cacheable {
		if m := s.cache.get(key, req.msg); m != nil {
			req.reply = reply{msg: m, relayed: true}
			return
		}
	}
	m := s.up.relay(ctx, req, func(ctx context.Context) (*dns.Msg, error) { return s.up.forward(ctx, req.msg, req.proto()) })
	if cacheable && m.Rcode != dns.RcodeServerFailure {
		s.cache.put(key, m)
	}
	req.reply = reply{msg: m, relayed: true}
}

// servfail is an empty SERVFAIL reply; ra says whether recursion is offered.
func servfail(req *dns.Msg, ra bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = ra
	return m
}

// errAllFailed is returned when no nameserver answered.
var errAllFailed = errors.New("no nameserver answered")

// errBusy is returned, at once, when --max-forwards upstream queries are
// already in flight.
var errBusy = errors.New("too many upstream queries in flight")

// errOtherQuestion is an upstream reply to a question skydns did not ask.
var errOtherQuestion = errors.New("reply to another question")

// outgoing is req as it goes upstream: with an id of its own, so a reply
// must match a query skydns sent rather than an id a client chose, and an
// EDNS0 buffer of at most udpSize (--max-udp-size): an upstream reply then
// fits what skydns sends its clients.
func outgoing(req *dns.Msg, udpSize uint16) *dns.Msg {
	out := req.Copy()
	out.Id = dns.Id()
	if opt := out.IsEdns0(); opt != nil && opt.UDPSize() > udpSize {
		opt.SetUDPSize(udpSize)
	}
	return out
}

// sameQuestion reports whether reply answers the question of query (the
// name in any letter case).
func sameQuestion(reply, query *dns.Msg) bool {
	if len(reply.Question) != 1 || len(query.Question) != 1 {
		return false
	}
	r, q := reply.Question[0], query.Question[0]
	return r.Qtype == q.Qtype && r.Qclass == q.Qclass && strings.EqualFold(r.Name, q.Name)
}

// Exchanger sends one query to one server over network ("udp" or "tcp").
type Exchanger interface {
	Exchange(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error)
}

// netExchanger is the real Exchanger: miekg/dns clients with the
// per-exchange timeout.
type netExchanger struct{ udp, tcp *dns.Client }

func newNetExchanger(timeout time.Duration) netExchanger {
	return netExchanger{
		udp: &dns.Client{Net: "udp", Timeout: timeout, UDPSize: dns.DefaultMsgSize},
		tcp: &dns.Client{Net: "tcp", Timeout: timeout, UDPSize: dns.DefaultMsgSize},
	}
}

func (e netExchanger) Exchange(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error) {
	c := e.udp
	if network == "tcp" {
		c = e.tcp
	}
	conn, err := c.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// miekg/dns honours ctx's deadline but not its end: closing the socket
	// is what stops an exchange at shutdown (the loop probe's too).
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return r, err
}

// upstream is every query skydns itself sends out: forwarded questions,
// lookups of CNAME, SRV and MX targets outside the zone, and stub zones.
type upstream struct {
	opts     ForwardOptions
	exchange Exchanger
	metrics  *Metrics
	log      *slog.Logger
	inFlight chan struct{} // A slot per upstream query in flight.
	loop     *loopGuard    // nil: no loop detection (loop.go).
}

func newUpstream(opts ForwardOptions, exchange Exchanger, metrics *Metrics, log *slog.Logger) *upstream {
	return &upstream{opts: opts, exchange: exchange, metrics: metrics, log: log, inFlight: make(chan struct{}, max(opts.MaxInFlight, 1))}
}

// enabled reports whether names may be sent to the nameservers.
func (u *upstream) enabled() bool { return len(u.opts.Nameservers) > 0 && !u.opts.NoRec }

// lookup is the resolver's way out of the zone, or nil when there is none.
func (u *upstream) lookup() targetLookup {
	if !u.enabled() {
		return nil
	}
	return u
}

// relay runs one upstream exchange with a deadline covering every attempt,
// and turns a failure into SERVFAIL.
func (u *upstream) relay(ctx context.Context, req *request, send func(context.Context) (*dns.Msg, error)) *dns.Msg {
	ctx, cancel := context.WithTimeout(ctx, u.budget())
	defer cancel()
	m, err := send(ctx)
	if err != nil {
		u.log.Debug("forward failed", "name", req.q().Name, "proto", req.proto(), "err", err)
		m = servfail(req.msg, true)
	}
	return m
}

// budget bounds one query's upstream work: every server tried once and one
// more, as in the failover rule.
func (u *upstream) budget() time.Duration {
	return time.Duration(len(u.opts.Nameservers)+2) * u.opts.Timeout
}

// forward relays req over network and returns the first answer. SkyDNS's
// ndots rule keeps single-label names (search-list leftovers like
// "metadata") from ever leaving the cluster.
func (u *upstream) forward(ctx context.Context, req *dns.Msg, network string) (*dns.Msg, error) {
	if err := u.mayLeave(req.Question[0].Name); err != nil {
		if errors.Is(err, errLoop) {
			u.metrics.forwardResult("recursive", err) // Counted, unlike the ndots rule's everyday refusals.
		}
		return nil, err
	}
	start := 0
	if u.opts.Rotate {
		start = int(req.Id) % len(u.opts.Nameservers)
	}
	m, err := u.failover(ctx, network, req, u.opts.Nameservers, start)
	u.metrics.forwardResult("recursive", err)
	return m, err
}

// mayLeave applies SkyDNS's ndots rule to a name about to go upstream, and
// keeps every name in once a forwarding loop was found.
func (u *upstream) mayLeave(name string) error {
	if u.loop.detected() {
		return errLoop // Sent, it would come back and multiply.
	}
	if dns.CountLabel(name) < u.opts.Ndots {
		return fmt.Errorf("%q has fewer than %d labels", name, u.opts.Ndots)
	}
	return nil
}

// Lookup resolves name for a CNAME, SRV or MX target, over UDP. Only a
// NOERROR answer counts.
func (u *upstream) Lookup(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if err := u.mayLeave(name); err != nil {
		return nil, err
	}
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	req.SetEdns0(dns.DefaultMsgSize, false)
	m, err := u.failover(ctx, "udp", req, u.opts.Nameservers, int(req.Id)%len(u.opts.Nameservers))
	if err == nil && m.Rcode != dns.RcodeSuccess {
		err = fmt.Errorf("upstream answered %s for %s", dns.RcodeToString[m.Rcode], name)
	}
	u.metrics.forwardResult("lookup", err)
	return m, err
}

// failover tries the servers in turn from start, len+1 attempts in all (so
// a single server gets a second chance), and returns the first answer to
// the question asked, with the request's id.
func (u *upstream) failover(ctx context.Context, network string, req *dns.Msg, servers []string, start int) (*dns.Msg, error) {
	select {
	case u.inFlight <- struct{}{}:
		defer func() { <-u.inFlight }()
	default:
		return nil, errBusy
	}
	leaveReader(ctx) // From here the query waits on the network.
	out := outgoing(req, u.opts.UDPSize)
	var lastErr error
	for i := 0; i <= len(servers); i++ {
		if ctx.Err() != nil {
			break
		}
		addr := servers[(start+i)%len(servers)]
		m, err := u.exchange.Exchange(ctx, out, network, addr)
		if err == nil && !sameQuestion(m, out) {
			err = errOtherQuestion
		}
		if err == nil {
			m.Id = req.Id
			m.Compress = true
			return m, nil
		}
		lastErr = fmt.Errorf("%s: %w", addr, err)
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	return nil, fmt.Errorf("%w: %w", errAllFailed, lastErr)
}
