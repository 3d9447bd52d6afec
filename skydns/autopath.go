package skydns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Autopath results, as skydns_autopath_total labels them.
const (
	autopathHit     = "hit"     // Answered with a CNAME to a later search name.
	autopathMiss    = "miss"    // Walked: no later name exists, or a step failed.
	autopathSkipped = "skipped" // An NXDOMAIN under <ns>.svc.<domain> from a client not (only) in <ns>.
)

// autopathStep walks a pod's search list for it (--autopath), as CoreDNS's
// autopath plugin does. A pod of namespace ns has the search list
// <ns>.svc.<domain> svc.<domain> <domain> <host domains...> and ndots:5,
// so its lookup of api.example.com starts with
// api.example.com.<ns>.svc.<domain>. When that name does not exist and
// the query came from an address that is a pod of ns alone (podAddrs),
// the step tries the rest of the list, then the name itself, and answers
// with a CNAME from the asked name to the first that exists (NODATA
// counts) and that name's reply. Every other query, and a walk where no
// name exists or a step fails, gets the reply it would get without it.
//
// It sits above the stub, reverse, zone and forward steps, so each name
// tried goes the way a query of it would, and below the shaping step,
// which shapes the one reply sent.
type autopathStep struct {
	pods      *Index
	svc       string   // ".svc.<domain>"
	podSuffix string   // "pod.<domain>"
	rest      []string // The search list after the first name, "." last.
	minTTL    uint32   // Of the CNAME to a name with no answers.
	signed    bool     // -dnssec: DO requests are not walked (see serve).
	metrics   *Metrics
	next      step
}

func newAutopathStep(opts Options, deps Deps, next step) *autopathStep {
	domain := opts.Zone.Domain
	rest := append([]string{"svc." + domain, domain}, opts.Autopath.Search...)
	return &autopathStep{
		pods: deps.Index, svc: ".svc." + domain, podSuffix: "pod." + domain,
		rest: append(rest, "."), minTTL: opts.Zone.MinTTL, signed: opts.Zone.Key != nil, metrics: deps.Metrics, next: next,
	}
}

func (s *autopathStep) serve(ctx context.Context, req *request) {
	s.next.serve(ctx, req)
	base, ns, ok := s.split(req.name)
	if !ok || req.reply.msg == nil || req.reply.msg.Rcode != dns.RcodeNameError {
		return
	}
	// From here the reply depends on who asks, which the packed answers'
	// key does not hold: it is never kept, so neither ServeDNS nor the UDP
	// fast path answers this name from a packed NXDOMAIN.
	req.reply.exact = false
	if client, ok := s.clientNamespace(req.client); !ok || client != ns || s.validating(req.msg) {
		s.metrics.autopath(autopathSkipped)
		return
	}
	s.walk(ctx, req, base)
}

// validating reports a DO request to a signed zone: an upstream name's
// reply would come after an in-zone CNAME the signer cannot tie to it, so
// a validator gets the walk it would do itself.
func (s *autopathStep) validating(m *dns.Msg) bool {
	opt := m.IsEdns0()
	return s.signed && opt != nil && opt.Do()
}

// split cuts name, <base>.<ns>.svc.<domain>., into base and ns; false for
// any other name.
func (s *autopathStep) split(name string) (base, ns string, ok bool) {
	head, ok := strings.CutSuffix(name, s.svc)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(head, '.')
	if i <= 0 || i == len(head)-1 {
		return "", "", false
	}
	return head[:i], head[i+1:], true
}

// clientNamespace is the namespace of the pods at the client's address,
// when they are all of one.
func (s *autopathStep) clientNamespace(client net.Addr) (string, bool) {
	var ip netip.Addr
	switch a := client.(type) {
	case *net.UDPAddr:
		ip = a.AddrPort().Addr()
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	default:
		return "", false
	}
	return s.pods.PodNamespace(ip, s.podSuffix)
}

// walk tries base under each later search name, the request standing in
// for each in turn, and answers from the first that exists; otherwise req
// keeps its own NXDOMAIN.
func (s *autopathStep) walk(ctx context.Context, req *request, base string) {
	asked, name, own := req.msg, req.name, req.reply
	defer func() { req.msg, req.name = asked, name }()
	for _, suffix := range s.rest {
		target := base + "." + suffix
		if suffix == "." {
			target = base + "."
		}
		r := s.try(ctx, req, asked, target)
		if r.msg != nil && r.msg.Rcode == dns.RcodeSuccess {
			s.metrics.autopath(autopathHit)
			req.reply = cnameTo(asked, target, r, s.minTTL)
			return
		}
		if r.msg == nil || r.msg.Rcode != dns.RcodeNameError {
			break // SERVFAIL, REFUSED, a drop: the client's own walk meets it as before.
		}
	}
	s.metrics.autopath(autopathMiss)
	req.reply = own
}

// try runs target, asked's question renamed, through the steps below.
// The query's budget is shared: the walk costs what the client's own
// queries would, within one query's bounds.
func (s *autopathStep) try(ctx context.Context, req *request, asked *dns.Msg, target string) reply {
	m := new(dns.Msg)
	*m = *asked // Shallow: the steps below read the request, never write it.
	q := asked.Question[0]
	m.Question = []dns.Question{{Name: target, Qtype: q.Qtype, Qclass: q.Qclass}}
	req.msg, req.name, req.reply = m, target, reply{}
	s.next.serve(ctx, req)
	return req.reply
}

// cnameTo is r, target's reply, as the reply to asked: asked's question
// and a CNAME from the asked name to target before target's answers, its
// TTL the first answer's (for NODATA, the negative TTL). Not exact: it
// depends on who asked.
func cnameTo(asked *dns.Msg, target string, r reply, negTTL uint32) reply {
	m, q := r.msg, asked.Question[0]
	m.Id = asked.Id
	m.Question = []dns.Question{q}
	ttl := negTTL
	if len(m.Answer) > 0 {
		ttl = m.Answer[0].Header().Ttl
	}
	cname := &dns.CNAME{Hdr: rrHeader(q.Name, dns.TypeCNAME, ttl), Target: target}
	m.Answer = append([]dns.RR{cname}, m.Answer...)
	return reply{msg: m, fromZone: r.fromZone, relayed: r.relayed}
}

// finishAutopath checks the --autopath flags and fills the host search
// domains from the resolv.conf file when none were given.
func (c *Config) finishAutopath(read resolvConfReader) error {
	if !c.Autopath {
		if len(c.AutopathSearch) > 0 || c.AutopathResolvConf != "" {
			return errors.New("--autopath-search, --autopath-resolv-conf: only with --autopath")
		}
		return nil
	}
	search := slices.Clone(c.AutopathSearch)
	if len(search) == 0 {
		var err error
		if search, err = c.resolvConfSearch(read); err != nil {
			return err
		}
	}
	for i, d := range search {
		d = dns.Fqdn(strings.ToLower(strings.TrimSpace(d)))
		if _, ok := dns.IsDomainName(d); !ok || d == "." {
			return fmt.Errorf("--autopath-search: %q is not a domain name", search[i])
		}
		search[i] = d
	}
	c.AutopathSearch = search
	return nil
}

// resolvConfSearch is the search line of --autopath-resolv-conf, or of
// --resolv-conf when that is not given (a missing default file: none).
func (c *Config) resolvConfSearch(read resolvConfReader) ([]string, error) {
	path, explicit := c.AutopathResolvConf, c.AutopathResolvConf != ""
	if !explicit {
		path = c.ResolvConf
	}
	if path == "" {
		return nil, nil
	}
	cc, err := read(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !explicit:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("--autopath-resolv-conf: %w", err)
	}
	return cc.Search, nil
}

// hostSearch is search without the names inside domain (a pod's own
// resolv.conf lists the cluster's first; the walk has them already) and
// without repeats.
func hostSearch(search []string, domain string) []string {
	var out []string
	for _, d := range search {
		if !dns.IsSubDomain(domain, d) && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
