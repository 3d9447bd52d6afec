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

// A skydns started while etcd is down binds at once and answers what it
// can: forwarded names, and SERVFAIL (not NXDOMAIN, not silence) for names
// in its zone. Its -etcd-timeout of two minutes is how long a skydns that
// read its config key before binding would stay silent. When etcd comes
// back it applies the config key, then loads the records.
func TestStartedWithEtcdDownAnswersAtOnce(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/config", `{"ttl":120,"min_ttl":7}`)
	etcd.Put(c, "/skydns/local/cluster/svc/default/nottl/x", `{"host":"10.5.0.1"}`)
	etcd.Stop()
	s := startSkydnsUnloaded(t, etcd.URL, "-nameservers="+startFakeUpstream(t), "-etcd-timeout=2m")
	m, err := harness.Exchange(s.Addr, "udp", "www.example.com.", dns.TypeA) // The fake upstream is UDP only.
	if err := harness.WantAnswers(m, err, "192.0.2.53"); err != nil {
		t.Errorf("a forwarded name with etcd down: %v", err)
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"nottl.default.svc.cluster.local.", "missing.default.svc.cluster.local."} {
			m, err := harness.Exchange(s.Addr, network, name, dns.TypeA)
			if err := harness.WantRcode(m, err, dns.RcodeServerFailure); err != nil {
				t.Errorf("%s: %s before the records load: %v", network, name, err)
			}
		}
	}
	etcd.Start()
	harness.Eventually(t, 30*time.Second, "the record, with the config key's TTL, once etcd is back", func() error {
		m, err := harness.Exchange(s.Addr, "udp", "nottl.default.svc.cluster.local.", dns.TypeA)
		if err := harness.WantAnswers(m, err, "10.5.0.1"); err != nil {
			return err
		}
		if ttl := m.Answer[0].Header().Ttl; ttl != 120 {
			return fmt.Errorf("TTL %d, want the config key's 120", ttl)
		}
		return nil
	})
	m, err = harness.Exchange(s.Addr, "udp", "missing.default.svc.cluster.local.", dns.TypeA)
	if err := harness.WantRcode(m, err, dns.RcodeNameError); err != nil {
		t.Fatal(err)
	}
	if soa, ok := authoritySOA(m); !ok || soa.Minttl != 7 {
		t.Fatalf("NXDOMAIN's SOA %v, want the config key's min_ttl 7", m.Ns)
	}
}

// A config key that sets dns_addr moves skydns off the address its flags
// bound, as SkyDNS, which read the key before binding, never bound that
// one; /healthz follows it to the new socket.
func TestEtcdConfigKeyMovesTheSockets(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	moved := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	etcd.Put(c, "/skydns/config", fmt.Sprintf(`{"dns_addr":%q}`, moved))
	etcd.Put(c, svcKey, svcVal)
	flagAddr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	s := startSkydnsServingAt(t, moved, etcd.URL, "-addr="+flagAddr)
	harness.Eventually(t, 10*time.Second, "the record on the config key's address", func() error {
		return s.answersTestService("udp")
	})
	if err := s.answersTestService("tcp"); err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"udp", "tcp"} {
		m, err := harness.Exchange(flagAddr, network, svcName, dns.TypeA)
		if harness.WantAnswers(m, err, "1.2.3.4") == nil {
			t.Errorf("%s: the flags' address %s still answers", network, flagAddr)
		}
	}
	if code, body, err := harness.HTTPGet(s.Metrics + "/healthz"); err != nil || code != 200 {
		t.Fatalf("/healthz after the move: %d %q %v", code, body, err)
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
