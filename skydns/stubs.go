package skydns

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// stubStep sends names inside a stub zone to that zone's own nameservers
// (-stubzones), before the cluster zone or the upstream see them.
type stubStep struct {
	zones *stubZones
	up    *upstream
	next  step
}

func (s *stubStep) serve(ctx context.Context, req *request) {
	servers, v := s.zones.match(req.name)
	if servers == nil {
		// That no stub zone takes the name is the stub records' say too: a
		// reply kept packed must go when one appears.
		req.work.read(v)
		s.next.serve(ctx, req)
		return
	}
	req.reply = reply{msg: s.up.relay(ctx, req, func(ctx context.Context) (*dns.Msg, error) {
		return s.forward(ctx, req, servers)
	}), relayed: true}
}

// forward sends the query to the zone's servers with the loop-guard option
// set. A client that sent no OPT record asked for no more than 512 bytes,
// and the OPT record that carries the option asks for no more; the reply
// is fitted to the client like every relayed one (shape.go), which also
// takes that OPT record off.
func (s *stubStep) forward(ctx context.Context, req *request, servers []string) (*dns.Msg, error) {
	out := req.msg.Copy()
	opt := out.IsEdns0()
	if opt == nil {
		out.SetEdns0(dns.MinMsgSize, false)
		opt = out.IsEdns0()
	}
	opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: stubLoopOption, Data: []byte{1}})
	m, err := s.up.failover(ctx, req.proto(), out, servers, int(req.msg.Id)%len(servers))
	s.up.metrics.forwardResult("stub", err)
	return m, err
}

// stubLoopOption marks queries skydns sends to a stub zone's servers. A
// query arriving with it came from another skydns and is dropped (see
// checkStep): without that, two servers naming each other as stubs would
// loop forever.
const stubLoopOption = dns.EDNS0LOCALSTART + 10

// hasStubLoopOption reports whether req came from a skydns stub forward.
func hasStubLoopOption(req *dns.Msg) bool { return stubLoopIn(req.IsEdns0()) }

// stubLoopIn reports whether opt (nil: none) holds the stub loop marker.
func stubLoopIn(opt *dns.OPT) bool {
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
	index  *Index
	suffix string // "stub.dns.<domain>"

	mu   sync.Mutex
	view stubView
}

type stubView struct {
	generation uint64
	zones      map[string][]string
	version    Version // Of the records the zones came from.
}

func newStubZones(domain string, index *Index) *stubZones {
	return &stubZones{index: index, suffix: "stub.dns." + domain}
}

// zonesFrom builds the zone table from the records under the suffix.
func zonesFrom(sx []*record, suffix string) map[string][]string {
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
		zones[dns.Fqdn(zone)] = append(zones[dns.Fqdn(zone)], net.JoinHostPort(ip.String(), strconv.Itoa(int(port))))
	}
	return zones
}

// match returns the servers of the longest stub zone containing name, or
// nil, and the Version of the stub records that say so. The view is
// rebuilt only when the index changed since the last build.
func (z *stubZones) match(name string) ([]string, Version) {
	view := z.current()
	best := ""
	for zone := range view.zones {
		if dns.IsSubDomain(zone, name) && len(zone) > len(best) {
			best = zone
		}
	}
	if best == "" {
		return nil, view.version
	}
	return view.zones[best], view.version
}

func (z *stubZones) current() stubView {
	gen := z.index.Generation()
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.view.zones != nil && z.view.generation == gen {
		return z.view
	}
	// With no stub records the Version is of the suffix's deepest existing
	// ancestor, which every change below it stamps: packed replies then
	// last only until the next change there, the price of being exact.
	sx, v, _ := z.index.VersionedRecords(z.suffix, false, nil)
	z.view = stubView{generation: gen, zones: zonesFrom(sx, z.suffix), version: v}
	return z.view
}
