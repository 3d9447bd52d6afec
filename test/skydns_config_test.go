//go:build integration

package test

import (
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/harness"
)

// /skydns/config in etcd overrides flags at start, as in SkyDNS.
func TestEtcdConfigKeyOverridesFlags(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/config", `{"ttl":120,"min_ttl":7,"hostmaster":"ops@example.org"}`)
	etcd.Put(c, "/skydns/local/cluster/svc/default/nottl/x", `{"host":"10.5.0.1"}`)
	s := startSkydns(t, etcd.URL)
	if _, answers := harness.Dig(t, s.Addr, "nottl.default.svc.cluster.local", "A"); !slices.Equal(answers,
		[]string{"nottl.default.svc.cluster.local. 120 IN A 10.5.0.1"}) {
		t.Fatalf("default TTL from /skydns/config: %q", answers)
	}
	m, err := harness.Exchange(s.Addr, "udp", "nothing.default.svc.cluster.local.", dns.TypeA)
	if err := harness.WantRcode(m, err, dns.RcodeNameError); err != nil {
		t.Fatal(err)
	}
	soa, ok := authoritySOA(m)
	if !ok {
		t.Fatalf("NXDOMAIN without an SOA: %v", m)
	}
	if soa.Hdr.Ttl != 7 || soa.Minttl != 7 || soa.Mbox != "ops.example.org." {
		t.Fatalf("SOA from /skydns/config: %v", soa)
	}
}

// authoritySOA is the SOA that leads a negative reply's authority section.
func authoritySOA(m *dns.Msg) (*dns.SOA, bool) {
	if len(m.Ns) == 0 {
		return nil, false
	}
	soa, ok := m.Ns[0].(*dns.SOA)
	return soa, ok
}

// -systemd takes the DNS sockets from socket activation and ignores -addr.
func TestSystemdSocketActivation(t *testing.T) {
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), "/skydns/local/cluster/svc/default/sd/x", `{"host":"10.5.0.2"}`)
	port := harness.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	udp, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	udpFile, _ := udp.(*net.UDPConn).File()
	tcpFile, _ := tcp.(*net.TCPListener).File()
	udp.Close()
	tcp.Close()
	// sh sets LISTEN_PID to its own pid, then exec keeps that pid for skydns,
	// as systemd does; fds 3 and 4 are inherited.
	script := fmt.Sprintf(`LISTEN_PID=$$ LISTEN_FDS=2 exec %s -systemd -addr=127.0.0.1:1 -machines=%s -domain=cluster.local. --metrics-addr=`,
		harness.Binary(t, "skydns"), etcd.URL)
	p := harness.StartWithFiles(t, "skydns", "/bin/sh", []string{"-c", script}, []*os.File{udpFile, tcpFile}, "SKYDNS_NAMESERVERS=127.0.0.1:9")
	udpFile.Close()
	tcpFile.Close()
	for _, network := range []string{"udp", "tcp"} {
		harness.Eventually(t, 10*time.Second, network+" answer on the activated socket", func() error {
			if exited, err := p.Exited(); exited {
				t.Fatalf("skydns exited: %v", err)
			}
			m, err := harness.Exchange(addr, network, "sd.default.svc.cluster.local.", dns.TypeA)
			return harness.WantAnswers(m, err, "10.5.0.2")
		})
	}
}
