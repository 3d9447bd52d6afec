package skydns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/skydns/msg"
)

// stubLoopOption marks queries skydns sends to a stub zone's servers. A
// query arriving with it came from another skydns and is dropped: without
// that, two servers naming each other as stubs would loop forever.
const stubLoopOption = dns.EDNS0LOCALSTART + 10

// errAllFailed is returned when no nameserver answered.
var errAllFailed = errors.New("no nameserver answered")

// exchanger sends one query to one server; *dns.Client is the real one.
type exchanger interface {
	ExchangeContext(ctx context.Context, m *dns.Msg, addr string) (*dns.Msg, time.Duration, error)
}

// Forwarder sends names outside the domain to recursive nameservers.
type Forwarder struct {
	servers []string
	rotate  bool // Start at the query's id modulo len(servers) instead of the first.
	ndots   int  // Names with fewer labels are never forwarded.
	clients map[string]exchanger
	metrics *Metrics
}

// NewForwarder forwards to servers (ip:port) with the given per-exchange
// timeout. It returns nil when there is nothing to forward to.
func NewForwarder(cfg *Config, metrics *Metrics) *Forwarder {
	if len(cfg.Nameservers) == 0 || cfg.NoRec {
		return nil
	}
	return &Forwarder{servers: cfg.Nameservers, rotate: cfg.NSRotate, ndots: cfg.Ndots, clients: newClients(cfg.ReadTimeout), metrics: metrics}
}

// newClients are the UDP and TCP clients upstream queries go out with,
// keyed by the transport the asking client used.
func newClients(timeout time.Duration) map[string]exchanger {
	clients := map[string]exchanger{}
	for _, network := range []string{"udp", "tcp"} {
		clients[network] = &dns.Client{Net: network, Timeout: timeout, UDPSize: dns.DefaultMsgSize}
	}
	return clients
}

// Forward relays req over network ("udp" or "tcp") and returns the first
// answer. SkyDNS's ndots rule keeps single-label names (search-list
// leftovers like "metadata") from ever leaving the cluster.
func (f *Forwarder) Forward(ctx context.Context, req *dns.Msg, network string) (*dns.Msg, error) {
	if dns.CountLabel(req.Question[0].Name) < f.ndots {
		return nil, fmt.Errorf("%q has fewer than %d labels", req.Question[0].Name, f.ndots)
	}
	start := 0
	if f.rotate {
		start = int(req.Id) % len(f.servers)
	}
	m, err := exchangeFailover(ctx, f.clients[network], req, f.servers, start)
	f.metrics.forwardResult("recursive", err)
	return m, err
}

// Lookup resolves name for a CNAME, SRV or MX target, over UDP. Only a
// NOERROR answer counts.
func (f *Forwarder) Lookup(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if dns.CountLabel(name) < f.ndots {
		return nil, fmt.Errorf("%q has fewer than %d labels", name, f.ndots)
	}
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	req.SetEdns0(dns.DefaultMsgSize, false)
	m, err := exchangeFailover(ctx, f.clients["udp"], req, f.servers, int(req.Id)%len(f.servers))
	if err == nil && m.Rcode != dns.RcodeSuccess {
		err = fmt.Errorf("upstream answered %s for %s", dns.RcodeToString[m.Rcode], name)
	}
	f.metrics.forwardResult("lookup", err)
	return m, err
}

// exchangeFailover tries the servers in turn from start, len+1 attempts in
// all (so a single server gets a second chance), and returns the first
// answer with the request's id.
func exchangeFailover(ctx context.Context, c exchanger, req *dns.Msg, servers []string, start int) (*dns.Msg, error) {
	var lastErr error
	for i := 0; i <= len(servers); i++ {
		if ctx.Err() != nil {
			break
		}
		addr := servers[(start+i)%len(servers)]
		m, _, err := c.ExchangeContext(ctx, req, addr)
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

// hasStubLoopOption reports whether req came from a skydns stub forward.
func hasStubLoopOption(req *dns.Msg) bool {
	opt := req.IsEdns0()
	if opt == nil {
		return false
	}
	for _, o := range opt.Option {
		if l, ok := o.(*dns.EDNS0_LOCAL); ok && l.Code == stubLoopOption {
			return true
		}
	}
	return false
}

// stubZones maps zones to their nameservers, from the records under
// stub.dns.<domain>: a leaf x.<zone>.stub.dns.<domain> with an IP host (and
// a port, default 53) adds that server to <zone>. It is rebuilt whenever
// the index changes.
type stubZones struct {
	index   *Index
	suffix  string // "stub.dns.<domain>"
	clients map[string]exchanger
	metrics *Metrics

	mu   sync.Mutex
	view stubView
}

type stubView struct {
	generation uint64
	zones      map[string][]string
}

func newStubZones(cfg *Config, index *Index, metrics *Metrics) *stubZones {
	return &stubZones{index: index, suffix: "stub.dns." + cfg.Domain, metrics: metrics, clients: newClients(cfg.ReadTimeout)}
}

// zonesFrom builds the zone table from the records under the suffix.
func zonesFrom(sx []*msg.Service, suffix string) map[string][]string {
	zones := make(map[string][]string)
	for _, s := range sx {
		ip := s.HostIP()
		if ip == nil {
			continue
		}
		name := strings.ToLower(s.Domain())
		zone, ok := strings.CutSuffix(name, "."+suffix)
		if !ok {
			continue
		}
		_, zone, found := strings.Cut(zone, ".") // Drop the leaf's own label.
		if !found || zone == "" {
			continue
		}
		port := s.Port
		if port == 0 {
			port = 53
		}
		zones[dns.Fqdn(zone)] = append(zones[dns.Fqdn(zone)], net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	}
	return zones
}

// match returns the servers of the longest stub zone containing name. The
// view is rebuilt only when the index changed since the last build.
func (z *stubZones) match(name string) (string, []string) {
	view := z.current()
	best := ""
	for zone := range view.zones {
		if dns.IsSubDomain(zone, name) && len(zone) > len(best) {
			best = zone
		}
	}
	if best == "" {
		return "", nil
	}
	return best, view.zones[best]
}

func (z *stubZones) current() stubView {
	gen := z.index.Generation()
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.view.zones != nil && z.view.generation == gen {
		return z.view
	}
	sx, _ := z.index.Records(z.suffix, false)
	z.view = stubView{generation: gen, zones: zonesFrom(sx, z.suffix)}
	return z.view
}

// forward sends req to the zone's servers with the loop-guard option set.
func (z *stubZones) forward(ctx context.Context, req *dns.Msg, network string, servers []string) (*dns.Msg, error) {
	out := req.Copy()
	opt := out.IsEdns0()
	if opt == nil {
		out.SetEdns0(dns.DefaultMsgSize, false)
		opt = out.IsEdns0()
	}
	opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: stubLoopOption, Data: []byte{1}})
	m, err := exchangeFailover(ctx, z.clients[network], out, servers, int(req.Id)%len(servers))
	z.metrics.forwardResult("stub", err)
	return m, err
}
