package skydns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Two guards against skydns forwarding to itself (issue #9), where every
// forwarded query comes back as a new one and multiplies:
//
//   - at start, a nameserver that is one of skydns's own listen addresses
//     is refused (given explicitly) or dropped (taken from resolv.conf);
//   - at run time, a loop through other resolvers (skydns, the node's
//     resolver, the cluster DNS IP, skydns again) is found the way
//     CoreDNS's loop plugin finds it: a query for a random name is sent to
//     each nameserver, and if it arrives back at skydns there is a loop.
//     Forwarding then stops; skydns stays up (see loopGuard).

// errLoop is returned, at once, for any name that would go upstream after
// a forwarding loop was found.
var errLoop = errors.New("forwarding loop detected: forwarding is off")

// isSelf reports whether ns is one of the listen addresses: the same port,
// and the same IP or, for an unspecified listen IP, a loopback IP (all of
// 127.0.0.0/8, ::1) or one of local, the host's interface addresses. Go
// listens dual-stack on 0.0.0.0 as on ::, so either family matches either.
func isSelf(ns netip.AddrPort, listen []netip.AddrPort, local []netip.Addr) bool {
	ip := ns.Addr().Unmap().WithZone("")
	for _, l := range listen {
		lip := l.Addr().Unmap().WithZone("")
		if l.Port() != ns.Port() {
			continue
		}
		if lip == ip || lip.IsUnspecified() && (ip.IsLoopback() || slices.Contains(local, ip)) {
			return true
		}
	}
	return false
}

// screenNameservers splits nameservers into those to keep and those that
// are skydns itself (isSelf). Given explicitly (flag, environment, etcd
// config), one that is skydns itself is the operator's mistake: an error,
// so skydns exits saying so. Taken from resolv.conf, it is the node's
// configuration, which the operator of skydns may not control (a local
// stub resolver on 127.0.0.53, a host-network pod): it is dropped and the
// rest are kept, possibly none. An entry that does not parse is kept:
// Finish has already refused it.
func screenNameservers(nameservers []string, fromResolvConf bool, listen []netip.AddrPort, local []netip.Addr) (keep, self []string, err error) {
	for _, s := range nameservers {
		ns, perr := netip.ParseAddrPort(s)
		if perr == nil && isSelf(ns, listen, local) {
			self = append(self, s)
		} else {
			keep = append(keep, s)
		}
	}
	if len(self) > 0 && !fromResolvConf {
		return nil, nil, fmt.Errorf("--nameservers: %s is skydns's own address (listening on %s): forwarding to it would loop",
			self[0], joinAddrPorts(listen))
	}
	return keep, self, nil
}

func joinAddrPorts(addrs []netip.AddrPort) string {
	s := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if str := a.String(); !slices.Contains(s, str) {
			s = append(s, str)
		}
	}
	return fmt.Sprint(s)
}

// refuseSelfNameservers is Finish's part: the nameservers given so far are
// all explicit, and --addr is where skydns will listen (unless --systemd
// passes the sockets: Run checks those once they are there).
func (c *Config) refuseSelfNameservers() error {
	if c.Systemd || c.NoRec || len(c.Nameservers) == 0 {
		return nil
	}
	addr, err := netip.ParseAddrPort(c.DNSAddr)
	if err != nil {
		return nil // checkHostPort has had its say.
	}
	listen := []netip.AddrPort{addr}
	_, _, err = screenNameservers(c.Nameservers, false, listen, interfaceAddrs(listen))
	return err
}

// screenListened is Run's part, once the sockets are bound, with their real
// addresses: nameservers from resolv.conf that are skydns itself are
// dropped with a warning (with none left, forwarding is off, as with no
// nameservers); explicit ones are an error (only with --systemd does one
// get this far).
func screenListened(fwd ForwardOptions, addrs []net.Addr, log *slog.Logger) (ForwardOptions, error) {
	if fwd.NoRec || len(fwd.Nameservers) == 0 {
		return fwd, nil
	}
	listen := addrPorts(addrs)
	keep, self, err := screenNameservers(fwd.Nameservers, fwd.FromResolvConf, listen, interfaceAddrs(listen))
	if err != nil {
		return fwd, err
	}
	if len(self) > 0 {
		log.Warn("dropped resolv.conf nameservers that are skydns's own address: forwarding to them would loop",
			"dropped", self, "kept", keep, "forwarding", len(keep) > 0)
	}
	fwd.Nameservers = keep
	return fwd, nil
}

// addrPorts are the IP and port of socket addresses.
func addrPorts(addrs []net.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range addrs {
		switch a := a.(type) {
		case *net.UDPAddr:
			out = append(out, a.AddrPort())
		case *net.TCPAddr:
			out = append(out, a.AddrPort())
		}
	}
	return out
}

// interfaceAddrs lists the host's interface addresses, needed only when
// skydns listens on an unspecified address. When they cannot be listed,
// none: loopback still counts as skydns itself.
func interfaceAddrs(listen []netip.AddrPort) []netip.Addr {
	if !slices.ContainsFunc(listen, func(l netip.AddrPort) bool { return l.Addr().IsUnspecified() }) {
		return nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// Probing: each nameserver gets probeRounds answers to its probe, one
// every probeInterval, within probeWindow. More than one, because the
// cluster DNS IP spreads a looping probe over the replicas and may bring
// it back to another one first; a window, because a resolver may still be
// starting.
const (
	probeRounds   = 3
	probeInterval = time.Second
	probeWindow   = 30 * time.Second
)

// loopGuard is the run-time loop check (--loop-detect). Its probe names are
// random and skydns never forwards them, so a probe that arrives at its
// handler went out to a nameserver and was sent back: a loop, on the first
// arrival (CoreDNS waits for the third because it sends the probe to
// itself and forwards it on).
//
// Once found, skydns stops forwarding (every name that would go upstream
// is SERVFAIL at once, counted as result="loop") and stays up, where
// CoreDNS exits: for a cluster DNS the names inside the domain matter
// most, and exiting would take them down with the rest, in a crash loop.
// The error line, skydns_forward_loop_detected and the SERVFAILs make it
// visible; forwarding comes back with a restart after the fix.
type loopGuard struct {
	probes   []*loopProbe
	byName   map[string]*loopProbe // Built once, then only read: no lock.
	exchange Exchanger
	metrics  *Metrics
	log      *slog.Logger
	tripped  atomic.Bool

	rounds   int
	interval time.Duration
	window   time.Duration
}

// loopProbe is one nameserver's probe: a HINFO query for name.
type loopProbe struct {
	upstream string
	name     string // <random>.<random>., in lowercase as req.name is.
	seen     atomic.Bool
}

// newLoopGuard is the guard for opts' nameservers, or nil when nothing is
// forwarded or --loop-detect=false.
func newLoopGuard(opts ForwardOptions, exchange Exchanger, metrics *Metrics, log *slog.Logger) *loopGuard {
	if !opts.LoopDetect || opts.NoRec || len(opts.Nameservers) == 0 {
		return nil
	}
	g := &loopGuard{
		byName: map[string]*loopProbe{}, exchange: exchange, metrics: metrics, log: log,
		rounds: probeRounds, interval: probeInterval, window: probeWindow,
	}
	for _, ns := range opts.Nameservers {
		p := &loopProbe{upstream: ns, name: strconv.FormatUint(rand.Uint64(), 10) + "." + strconv.FormatUint(rand.Uint64(), 10) + "."}
		g.probes = append(g.probes, p)
		g.byName[p.name] = p
	}
	return g
}

// detected reports whether a loop was found; false for no guard.
func (g *loopGuard) detected() bool { return g != nil && g.tripped.Load() }

// cameBack records that p's probe arrived at the handler: the loop is
// found. Logged once per nameserver, however often the probe returns.
func (g *loopGuard) cameBack(p *loopProbe) {
	g.tripped.Store(true)
	if p.seen.Swap(true) {
		return
	}
	g.metrics.loopDetected.Set(1)
	g.log.Error("forwarding loop: a probe query sent to this nameserver came back to skydns; forwarding is off until restart, names outside the domain get SERVFAIL",
		"nameserver", p.upstream, "probe", p.name+" HINFO")
}

// run probes every nameserver at once and returns when each is done, or
// when ctx ends.
func (g *loopGuard) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range g.probes {
		wg.Go(func() { g.probe(ctx, p) })
	}
	wg.Wait()
}

// probe sends p's query until it has had g.rounds answers, a loop is
// found, or g.window has passed.
func (g *loopGuard) probe(ctx context.Context, p *loopProbe) {
	ctx, cancel := context.WithTimeout(ctx, g.window)
	defer cancel()
	tick := time.NewTicker(g.interval)
	defer tick.Stop()
	for answered := 0; ; {
		if g.send(ctx, p) {
			answered++
		}
		if answered >= g.rounds || g.tripped.Load() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// send is one probe query; true when the nameserver answered, whatever it
// said.
func (g *loopGuard) send(ctx context.Context, p *loopProbe) bool {
	m := new(dns.Msg)
	m.SetQuestion(p.name, dns.TypeHINFO)
	if _, err := g.exchange.Exchange(ctx, m, "udp", p.upstream); err != nil {
		g.log.Debug("loop probe not answered", "nameserver", p.upstream, "err", err)
		return false
	}
	return true
}

// probeLoops runs the loop probe until it is done or ctx ends; at once
// when there is none.
func (h *Handler) probeLoops(ctx context.Context) {
	if g := h.caches.loop; g != nil {
		g.run(ctx)
	}
}

// loopStep answers the guard's probes, which must never be forwarded
// again: REFUSED, after telling the guard. Every other query passes.
type loopStep struct {
	guard *loopGuard
	next  step
}

func (s *loopStep) serve(ctx context.Context, req *request) {
	if req.q().Qtype == dns.TypeHINFO {
		if p := s.guard.byName[req.name]; p != nil {
			s.guard.cameBack(p)
			req.reply = reply{msg: rcodeReply(req.msg, dns.RcodeRefused)}
			return
		}
	}
	s.next.serve(ctx, req)
}
