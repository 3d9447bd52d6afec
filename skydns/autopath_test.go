package skydns

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skypod/skypod/skydns/msg"
)

// autopathRecords: services in team-a and team-b, a name at the apex, a
// pod of team-a at 10.1.0.5 and at 127.0.0.1 (the UDP tests' client), and
// 10.1.0.9 shared by pods of both (hostNetwork).
var autopathRecords = map[string]string{
	"x.web.team-a.svc.skydns.test.":         `{"host":"10.2.0.1"}`,
	"x.api.team-b.svc.skydns.test.":         `{"host":"10.2.0.2"}`,
	"apex.skydns.test.":                     `{"host":"10.2.0.3"}`,
	"h1.10-1-0-5.team-a.pod.skydns.test.":   `{"host":"10.1.0.5"}`,
	"h2.127-0-0-1.team-a.pod.skydns.test.":  `{"host":"127.0.0.1"}`,
	"h3.10-1-0-9.team-a.pod.skydns.test.":   `{"host":"10.1.0.9"}`,
	"h4.10-1-0-9.team-b.pod.skydns.test.":   `{"host":"10.1.0.9"}`,
	"h5.10-1-0-7.team-b.pod.other.example.": `{"host":"10.1.0.7"}`,
}

func loadPodIndex(t testing.TB, records map[string]string) *Index {
	t.Helper()
	ix := NewIndex("skydns")
	ix.TrackPods()
	return fillIndex(t, ix, records)
}

// newAutopathHandler is the test handler with --autopath and host search
// domain example.com, its metrics in reg.
func newAutopathHandler(t testing.TB, reg *prometheus.Registry, with ...func(*Config)) *Handler {
	t.Helper()
	cfg := newTestConfig()
	cfg.Autopath, cfg.AutopathSearch = true, []string{"Example.com", "skydns.test"}
	for _, f := range with {
		f(cfg)
	}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	ix := loadPodIndex(t, autopathRecords)
	return newTestHandler(t, cfg, ix, func(d *Deps) { d.Metrics = NewMetrics(reg, ix) })
}

// fromWriter is a packingWriter whose client is remote.
type fromWriter struct {
	packingWriter
	remote net.Addr
}

func (w *fromWriter) RemoteAddr() net.Addr { return w.remote }

// askFrom runs req through ServeDNS as sent over UDP from ip.
func askFrom(t testing.TB, h *Handler, req *dns.Msg, ip string) *dns.Msg {
	t.Helper()
	w := &fromWriter{remote: &net.UDPAddr{IP: net.ParseIP(ip), Port: 40000}}
	h.ServeDNS(w, req)
	m := new(dns.Msg)
	if err := m.Unpack(w.buf); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return m
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = rr.String()
	}
	return out
}

func TestAutopath(t *testing.T) {
	for _, tc := range []struct {
		desc, client, qname string
		qtype               uint16
		rcode               int
		answer              []string // Empty with NXDOMAIN: the SOA is checked instead.
		result              string   // skydns_autopath_total's label counted, "" none.
	}{
		{"existing name", "10.1.0.5", "web.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"web.team-a.svc.skydns.test.\t3600\tIN\tA\t10.2.0.1"}, ""},
		{"another namespace's service", "10.1.0.5", "api.team-b.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"api.team-b.team-a.svc.skydns.test.\t3600\tIN\tCNAME\tapi.team-b.svc.skydns.test.", "api.team-b.svc.skydns.test.\t3600\tIN\tA\t10.2.0.2"}, autopathHit},
		{"NODATA counts", "10.1.0.5", "api.team-b.team-a.svc.skydns.test.", dns.TypeAAAA, dns.RcodeSuccess,
			[]string{"api.team-b.team-a.svc.skydns.test.\t60\tIN\tCNAME\tapi.team-b.svc.skydns.test."}, autopathHit},
		{"the domain", "10.1.0.5", "apex.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"apex.team-a.svc.skydns.test.\t3600\tIN\tCNAME\tapex.skydns.test.", "apex.skydns.test.\t3600\tIN\tA\t10.2.0.3"}, autopathHit},
		{"host domain, upstream", "10.1.0.5", "www.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"www.team-a.svc.skydns.test.\t300\tIN\tCNAME\twww.example.com.", "www.example.com.\t300\tIN\tA\t93.184.216.34"}, autopathHit},
		{"the name itself, upstream", "10.1.0.5", "mx.miek.nl.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeSuccess,
			[]string{"mx.miek.nl.team-a.svc.skydns.test.\t300\tIN\tCNAME\tmx.miek.nl.", "mx.miek.nl.\t300\tIN\tA\t176.58.119.54"}, autopathHit},
		{"every step NXDOMAIN", "10.1.0.5", "nothing.example.org.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeNameError, nil, autopathMiss},
		{"a step fails (ndots)", "10.1.0.5", "nothing.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeNameError, nil, autopathMiss},
		{"unknown client", "10.9.9.9", "api.team-b.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeNameError, nil, autopathSkipped},
		{"shared address", "10.1.0.9", "api.team-b.team-a.svc.skydns.test.", dns.TypeA, dns.RcodeNameError, nil, autopathSkipped},
		{"pod of another domain", "10.1.0.7", "api.team-b.team-b.svc.skydns.test.", dns.TypeA, dns.RcodeNameError, nil, autopathSkipped},
		{"not the client's first search name", "10.1.0.5", "api.team-b.team-b.svc.skydns.test.", dns.TypeA, dns.RcodeNameError, nil, autopathSkipped},
		{"not under svc", "10.1.0.5", "api.team-b.skydns.test.", dns.TypeA, dns.RcodeNameError, nil, ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := newAutopathHandler(t, reg)
			for range 2 { // The second time past the packed answers.
				req := udpQuery(tc.qname, tc.qtype, 7)
				m := askFrom(t, h, req, tc.client)
				if m.Rcode != tc.rcode || m.Id != 7 || m.Question[0] != req.Question[0] {
					t.Fatalf("rcode %s id %d question %v, want %s", dns.RcodeToString[m.Rcode], m.Id, m.Question, dns.RcodeToString[tc.rcode])
				}
				if tc.rcode == dns.RcodeNameError {
					if len(m.Answer) != 0 || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
						t.Fatalf("NXDOMAIN answer %v ns %v", m.Answer, m.Ns)
					}
					continue
				}
				if got := rrStrings(m.Answer); !slices.Equal(got, tc.answer) {
					t.Fatalf("answer\n%q\nwant\n%q", got, tc.answer)
				}
			}
			for _, result := range []string{autopathHit, autopathMiss, autopathSkipped} {
				want := 0.0
				if result == tc.result {
					want = 2
				}
				if got := counterValue(t, reg, "skydns_autopath_total", result); got != want {
					t.Errorf("skydns_autopath_total{result=%q} = %v, want %v", result, got, want)
				}
			}
		})
	}
}

// A client of team-a gets the CNAME and one from an unknown address the
// NXDOMAIN for the same name, in either order, through ServeDNS and the
// batched UDP reader's packed fast path alike: no packed reply of one is
// served to the other.
func TestAutopathNotPacked(t *testing.T) {
	const qname = "api.team-b.team-a.svc.skydns.test."
	h := newAutopathHandler(t, prometheus.NewRegistry())
	addr := serveBatched(t, h, "127.0.0.1:0", 1)
	viaUDP := func(ip string) *dns.Msg {
		b := exchangeFrom(t, ip, addr, packQuery(t, udpQuery(qname, dns.TypeA, 9)))
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		return m
	}
	viaServeDNS := func(ip string) *dns.Msg { return askFrom(t, h, udpQuery(qname, dns.TypeA, 9), ip) }
	for _, order := range [][]string{{"127.0.0.1", "127.0.0.2"}, {"127.0.0.2", "127.0.0.1"}} {
		for range 3 {
			for _, ip := range order {
				for _, via := range []func(string) *dns.Msg{viaUDP, viaServeDNS} {
					m := via(ip)
					wantCNAME := ip == "127.0.0.1"
					if gotCNAME := m.Rcode == dns.RcodeSuccess && len(m.Answer) == 2; gotCNAME != wantCNAME {
						t.Fatalf("client %s: rcode %s answer %v", ip, dns.RcodeToString[m.Rcode], m.Answer)
					}
				}
			}
		}
	}
	if n := h.caches.packed.Len(); n != 0 {
		t.Errorf("%d packed answers kept", n)
	}
}

// In a signed zone a DO request is not walked (its CNAME could front an
// upstream name's unsigned reply); one without DO is.
func TestAutopathSignedZone(t *testing.T) {
	h := newAutopathHandler(t, prometheus.NewRegistry(), func(c *Config) {
		c.DNSSEC = writeTestKey(t, t.TempDir(), "skydns.test.", dns.ECDSAP256SHA256, 257)
	})
	for _, do := range []bool{true, false} {
		req := udpQuery("www.team-a.svc.skydns.test.", dns.TypeA, 3)
		req.SetEdns0(1232, do)
		m := askFrom(t, h, req, "10.1.0.5")
		if walked := m.Rcode == dns.RcodeSuccess; walked == do {
			t.Errorf("DO %v: rcode %s answer %v", do, dns.RcodeToString[m.Rcode], m.Answer)
		}
	}
}

// exchangeFrom sends b to addr from a socket bound to ip and returns the
// reply's bytes.
func exchangeFrom(t testing.TB, ip string, addr net.Addr, b []byte) []byte {
	t.Helper()
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// Without --autopath the same queries get the NXDOMAIN, and it is packed.
func TestAutopathOff(t *testing.T) {
	h := newTestHandler(t, newTestConfig(), loadPodIndex(t, autopathRecords))
	for range 2 {
		m := askFrom(t, h, udpQuery("api.team-b.team-a.svc.skydns.test.", dns.TypeA, 1), "10.1.0.5")
		if m.Rcode != dns.RcodeNameError {
			t.Fatalf("rcode %s", dns.RcodeToString[m.Rcode])
		}
	}
	if n := h.caches.packed.Len(); n != 1 {
		t.Errorf("%d packed answers, want 1", n)
	}
}

// The pod view follows puts, replacements and deletes.
func TestPodNamespace(t *testing.T) {
	ix := loadPodIndex(t, autopathRecords)
	const suffix = "pod.skydns.test."
	for _, tc := range []struct {
		desc   string
		change func()
		ip     string
		ns     string
		ok     bool
	}{
		{"one namespace", func() {}, "10.1.0.5", "team-a", true},
		{"mapped", func() {}, "::ffff:10.1.0.5", "team-a", true},
		{"shared", func() {}, "10.1.0.9", "", false},
		{"other domain", func() {}, "10.1.0.7", "", false},
		{"unknown", func() {}, "10.9.9.9", "", false},
		{"deleted", func() { ix.Delete(msg.Path("h1.10-1-0-5.team-a.pod.skydns.test.", "skydns")) }, "10.1.0.5", "", false},
		{"one left of the shared", func() { ix.Delete(msg.Path("h4.10-1-0-9.team-b.pod.skydns.test.", "skydns")) }, "10.1.0.9", "team-a", true},
		{"readdressed", func() {
			ix.Put(msg.Service{Key: msg.Path("h3.10-1-0-9.team-a.pod.skydns.test.", "skydns"), Host: "10.1.0.10"})
		}, "10.1.0.9", "", false},
		{"at its new address", func() {}, "10.1.0.10", "team-a", true},
		{"relisted away", func() { ix.Replace(nil) }, "10.1.0.10", "", false},
	} {
		tc.change()
		if ns, ok := ix.PodNamespace(netip.MustParseAddr(tc.ip), suffix); ns != tc.ns || ok != tc.ok {
			t.Errorf("%s: PodNamespace(%s) = %q, %v; want %q, %v", tc.desc, tc.ip, ns, ok, tc.ns, tc.ok)
		}
	}
	if len(ix.tree.pods) != 0 {
		t.Errorf("pods left after the relist: %v", ix.tree.pods)
	}
}

func TestAutopathConfig(t *testing.T) {
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 10.0.0.1\nsearch ns.svc.skydns.test svc.skydns.test skydns.test corp.example. Example.com corp.example\noptions ndots:5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		set  func(c *Config)
		want []string // nil with err.
		err  bool
	}{
		{"off", func(c *Config) {}, nil, false},
		{"search without autopath", func(c *Config) { c.AutopathSearch = []string{"a.b"} }, nil, true},
		{"resolv.conf without autopath", func(c *Config) { c.AutopathResolvConf = resolv }, nil, true},
		{"search", func(c *Config) { c.Autopath, c.AutopathSearch = true, []string{"A.example", "b.example."} }, []string{"a.example.", "b.example."}, false},
		{"bad search", func(c *Config) { c.Autopath, c.AutopathSearch = true, []string{"a..b"} }, nil, true},
		{"empty search", func(c *Config) { c.Autopath, c.AutopathSearch = true, []string{""} }, nil, true},
		{"resolv.conf", func(c *Config) { c.Autopath, c.AutopathResolvConf = true, resolv }, []string{"corp.example.", "example.com."}, false},
		{"--resolv-conf", func(c *Config) { c.Autopath, c.ResolvConf = true, resolv }, []string{"corp.example.", "example.com."}, false},
		{"missing named file", func(c *Config) { c.Autopath, c.AutopathResolvConf = true, filepath.Join(dir, "none") }, nil, true},
		{"missing default file", func(c *Config) { c.Autopath, c.ResolvConf = true, filepath.Join(dir, "none") }, nil, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			c := newTestConfig()
			tc.set(c)
			err := c.Finish()
			if (err != nil) != tc.err {
				t.Fatalf("Finish: %v", err)
			}
			if err != nil {
				return
			}
			if got := c.options().Autopath.Search; !slices.Equal(got, tc.want) {
				t.Errorf("search %q, want %q", got, tc.want)
			}
		})
	}
}
