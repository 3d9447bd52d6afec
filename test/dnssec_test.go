//go:build integration

// skydns -dnssec through its binary, checked by a real validator: BIND's
// delv, given the zone's key as its only trust anchor, must validate
// answers, NXDOMAIN and NODATA anywhere in the zone, and reject a record
// changed on its way.

package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/harness"
)

// dnssecKey runs dnssec-keygen for cluster.local. in dir, and returns the
// basename of the pair and a delv anchor file for it.
func dnssecKey(t *testing.T, dir, zone string, args ...string) (basename, anchor string) {
	t.Helper()
	args = append(append([]string{"-K", dir, "-n", "ZONE", "-f", "KSK"}, args...), zone)
	out, err := exec.Command(harness.Tool(t, "dnssec-keygen"), args...).Output()
	if err != nil {
		t.Fatalf("dnssec-keygen %v: %v", args, err)
	}
	basename = filepath.Join(dir, strings.TrimSpace(string(out)))
	f, err := os.Open(basename + ".key")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rr, err := dns.ReadRR(f, basename+".key")
	if err != nil {
		t.Fatal(err)
	}
	key := rr.(*dns.DNSKEY)
	anchor = basename + ".anchor"
	block := fmt.Sprintf("trust-anchors {\n  %q static-key %d %d %d %q;\n};\n", key.Hdr.Name, key.Flags, key.Protocol, key.Algorithm, key.PublicKey)
	if err := os.WriteFile(anchor, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return basename, anchor
}

// delv asks addr for name and type, validating from anchor, and returns
// its output.
func delv(t *testing.T, addr, anchor, name, qtype string) string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-a", anchor, "+root=cluster.local", "@" + host, "-p", port, name, qtype}
	out, _ := exec.Command(harness.Tool(t, "delv"), args...).CombinedOutput() // Its exit status says too little: the output is read.
	return string(out)
}

// dnssecRecords are a service, its named port and a headless service's
// endpoint, as kube2sky writes them.
func putDNSSECRecords(t *testing.T, etcd *harness.Etcd) {
	c := etcd.Client()
	etcd.Put(c, svcKey, svcVal)
	etcd.Put(c, srvKey, srvVal)
	etcd.Put(c, "/skydns/local/cluster/svc/ns/hl/3a4b5c6d", `{"host":"10.2.0.7","priority":10,"weight":10,"ttl":30}`)
}

func TestDNSSECValidatesWithDelv(t *testing.T) {
	etcd := harness.StartEtcd(t)
	putDNSSECRecords(t, etcd)
	for _, alg := range [][]string{{"-a", "ECDSAP256SHA256"}, {"-a", "RSASHA256", "-b", "2048"}} {
		t.Run(alg[1], func(t *testing.T) {
			basename, anchor := dnssecKey(t, t.TempDir(), "cluster.local", alg...)
			s := startSkydns(t, etcd.URL, "-dnssec="+basename)
			tests := []struct {
				name, qtype, want string
			}{
				{svcName, "A", "; fully validated\n" + svcName + " 30 IN A 1.2.3.4"},
				{"_http1._tcp." + svcName, "SRV", "; fully validated\n_http1._tcp." + svcName + " 30 IN SRV 10 100 80 " + svcName},
				{"hl.ns.svc.cluster.local.", "A", "; fully validated\nhl.ns.svc.cluster.local. 30 IN A 10.2.0.7"},
				{"cluster.local.", "DNSKEY", "; fully validated\ncluster.local. 3600 IN DNSKEY"},
				{"cluster.local.", "SOA", "; fully validated\ncluster.local. 3600 IN SOA"},
				{"nope.default.svc.cluster.local.", "A", "; negative response, fully validated\n; nope.default.svc.cluster.local. 60 IN \\-ANY ;-$NXDOMAIN"},
				{svcName + "default.svc.cluster.local.", "A", "; negative response, fully validated\n; " + svcName + "default.svc.cluster.local. 60 IN \\-ANY ;-$NXDOMAIN"},
				{"nope.cluster.local.", "SRV", "; negative response, fully validated\n; nope.cluster.local. 60 IN \\-ANY ;-$NXDOMAIN"},
				{svcName, "AAAA", "; negative response, fully validated\n; " + svcName + " 60 IN \\-AAAA ;-$NXRRSET"},
				{"svc.cluster.local.", "TXT", "; negative response, fully validated\n; svc.cluster.local. 60 IN \\-TXT ;-$NXRRSET"},
				{"ns.svc.cluster.local.", "MX", "; negative response, fully validated\n; ns.svc.cluster.local. 60 IN \\-MX ;-$NXRRSET"},
				{"svc.cluster.local.", "DS", "; negative response, fully validated\n; svc.cluster.local. 60 IN \\-DS ;-$NXRRSET"},
				{"cluster.local.", "NS", "; negative response, fully validated\n; cluster.local. 60 IN \\-NS ;-$NXRRSET"},
				{"nope.svc.cluster.local.", "DS", "; negative response, fully validated\n; nope.svc.cluster.local. 60 IN \\-DS ;-$NXDOMAIN"},
				// SkyDNS's own wildcards, a name in mixed case, and an empty
				// non-terminal's answer (every record below it).
				{"*.ns.svc.cluster.local.", "A", "; fully validated\n*.ns.svc.cluster.local. 30 IN A 10.2.0.7"},
				{"hl.any.svc.cluster.local.", "A", "; fully validated\nhl.any.svc.cluster.local. 30 IN A 10.2.0.7"},
				{"TestService.Default.svc.cluster.local.", "A", "; fully validated"},
				{"svc.cluster.local.", "A", "; fully validated"},
				{"ns.svc.cluster.local.", "DS", "; negative response, fully validated\n; ns.svc.cluster.local. 60 IN \\-DS ;-$NXRRSET"},
				// Not DS at the apex: a DS belongs to the parent, and a
				// NODATA from the zone itself (signed: TestSignedReplies)
				// sends delv after the servers of local., which nothing
				// here serves.
			}
			for _, tc := range tests {
				if out := delv(t, s.Addr, anchor, tc.name, tc.qtype); !strings.Contains(normalise(out), tc.want) {
					t.Errorf("delv %s %s:\n%s\nwant it to hold:\n%s", tc.name, tc.qtype, out, tc.want)
				}
			}
			// Another key for the zone as the anchor: nothing validates.
			_, stranger := dnssecKey(t, t.TempDir(), "cluster.local", alg...)
			if out := delv(t, s.Addr, stranger, svcName, "A"); strings.Contains(out, "fully validated") || !strings.Contains(out, "resolution failed") {
				t.Errorf("delv with another key as the anchor:\n%s", out)
			}
		})
	}
}

// normalise puts every run of blanks within a line to one space, as
// delv's columns vary with the lengths of names.
func normalise(out string) string {
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		lines[i] = strings.Join(strings.Fields(line), " ")
	}
	return strings.Join(lines, "\n")
}

// A record changed between skydns and the validator fails validation.
func TestDNSSECTamperedAnswerFails(t *testing.T) {
	etcd := harness.StartEtcd(t)
	putDNSSECRecords(t, etcd)
	basename, anchor := dnssecKey(t, t.TempDir(), "cluster.local", "-a", "ECDSAP256SHA256")
	s := startSkydns(t, etcd.URL, "-dnssec="+basename)
	proxy := startTamperingProxy(t, s.Addr)
	if out := delv(t, s.Addr, anchor, svcName, "A"); !strings.Contains(out, "; fully validated") {
		t.Fatalf("delv straight to skydns:\n%s", out)
	}
	out := delv(t, proxy, anchor, svcName, "A")
	if strings.Contains(out, "fully validated") || !strings.Contains(out, "resolution failed") {
		t.Fatalf("delv through a proxy that changes A records:\n%s", out)
	}
}

// startTamperingProxy relays UDP queries to upstream and turns the last
// bit of every A record in the replies, over UDP only: the validator's
// TCP retries then fail to connect, so it must judge what it got.
func startTamperingProxy(t *testing.T, upstream string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		reply, err := dns.Exchange(req, upstream)
		if err != nil {
			return // A lost reply is a delv timeout, which fails the test as well.
		}
		for _, rr := range reply.Answer {
			if a, ok := rr.(*dns.A); ok {
				a.A = net.IPv4(a.A[0], a.A[1], a.A[2], a.A[3]^1).To4() // From the wire, A holds 4 bytes.
			}
		}
		_ = w.WriteMsg(reply)
	})
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// A key for another name stops skydns at start, with one line.
func TestDNSSECKeyForAnotherZoneExits(t *testing.T) {
	basename, _ := dnssecKey(t, t.TempDir(), "example.org", "-a", "ECDSAP256SHA256")
	p := harness.Start(t, "skydns", harness.Binary(t, "skydns"), []string{"-domain=cluster.local.", "-addr=127.0.0.1:" + fmt.Sprint(harness.FreePort(t)), "-dnssec=" + basename})
	harness.Eventually(t, 5*time.Second, "exit", func() error {
		if exited, _ := p.Exited(); !exited {
			return fmt.Errorf("still running")
		}
		return nil
	})
	out := strings.TrimSpace(p.Log())
	if _, err := p.Exited(); err == nil || strings.Count(out, "\n") != 0 || !strings.Contains(out, `not for the domain "cluster.local."`) {
		t.Fatalf("exit %v, output %q: want non-zero and one line", err, out)
	}
}

// The key named in /skydns/config, as SkyDNS's "dnssec" and "scache",
// signs as the flag's does.
func TestDNSSECFromTheEtcdConfigKey(t *testing.T) {
	etcd := harness.StartEtcd(t)
	putDNSSECRecords(t, etcd)
	basename, anchor := dnssecKey(t, t.TempDir(), "cluster.local", "-a", "ECDSAP256SHA256")
	etcd.Put(etcd.Client(), "/skydns/config", fmt.Sprintf(`{"dnssec":%q,"scache":100}`, basename))
	s := startSkydns(t, etcd.URL)
	for _, q := range [][2]string{{svcName, "A"}, {"nope.svc.cluster.local.", "A"}} {
		if out := delv(t, s.Addr, anchor, q[0], q[1]); !strings.Contains(out, "fully validated") {
			t.Errorf("delv %s %s:\n%s", q[0], q[1], out)
		}
	}
}
