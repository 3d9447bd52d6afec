package skydns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// selfCheck is what /healthz means: the DNS server answers. It sends a
// CHAOS `id.server.` TXT query to skydns's own UDP socket and wants the
// chaos step's answer back. An HTTP server that is alive while the DNS
// read loop or the query chain is stuck cannot pass it, and the name
// needs no records: the answer depends on neither etcd nor kube2sky, so
// an etcd outage never restarts skydns (readiness covers the records).
//
// A result is reused for cacheFor, so however often /healthz is asked,
// skydns sends itself at most one query per cacheFor.
type selfCheck struct {
	addr     string
	timeout  time.Duration
	cacheFor time.Duration
	now      func() time.Time

	mu      sync.Mutex
	checked time.Time
	err     error
}

// selfCheckTimeout bounds the self-query: a reply from memory over
// loopback takes well under a millisecond; a second is a server that is
// not answering, and still well inside the kubelet's probe timeout.
const selfCheckTimeout = time.Second

func newSelfCheck(local net.Addr) *selfCheck {
	return &selfCheck{addr: dialable(local), timeout: selfCheckTimeout, cacheFor: time.Second, now: time.Now}
}

// follow points the check at the UDP socket skydns now serves on, when
// its config in etcd has moved it.
func (s *selfCheck) follow(local net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if addr := dialable(local); addr != s.addr {
		s.addr, s.checked = addr, time.Time{}
	}
}

// dialable is local as an address to send to: a wildcard bind
// (0.0.0.0:53, [::]:53) is reached over the loopback of its family.
func dialable(local net.Addr) string {
	ap, err := netip.ParseAddrPort(local.String())
	if err != nil || !ap.Addr().IsUnspecified() {
		return local.String()
	}
	lo := netip.IPv6Loopback()
	if ap.Addr().Unmap().Is4() {
		lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return netip.AddrPortFrom(lo, ap.Port()).String()
}

// Status is the last result, asking again once it is older than cacheFor.
func (s *selfCheck) Status(ctx context.Context) (ok bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); s.checked.IsZero() || now.Sub(s.checked) >= s.cacheFor {
		s.err = s.query(ctx)
		s.checked = s.now()
	}
	if s.err != nil {
		return false, fmt.Sprintf("dns server on %s does not answer: %v", s.addr, s.err)
	}
	return true, "ok"
}

// query asks id.server. CH TXT and accepts only the chaos step's answer.
func (s *selfCheck) query(ctx context.Context) error {
	m := new(dns.Msg)
	m.SetQuestion("id.server.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	qctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	r, _, err := (&dns.Client{Net: "udp", Timeout: s.timeout}).ExchangeContext(qctx, m, s.addr)
	switch {
	case err != nil:
		return err
	case r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0:
		return fmt.Errorf("id.server. CH TXT answered %s with %d records", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
	return nil
}
