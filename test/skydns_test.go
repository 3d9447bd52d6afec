//go:build integration

// skydns through its binary: a real etcd, the real bin/skydns, dig and the
// miekg/dns client, all on loopback.

package test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/harness"
)

type skydnsProc struct {
	*harness.Process
	Addr    string // DNS, UDP and TCP.
	Metrics string // http://127.0.0.1:port
}

// startSkydns runs bin/skydns with the legacy manifest's exact arguments,
// pointed at loopback test ports; metrics go to a free port through the
// legacy PROMETHEUS_PORT variable, so no argument is added.
func startSkydns(t testing.TB, etcdURL string, extra ...string) *skydnsProc {
	t.Helper()
	s := startSkydnsUnloaded(t, etcdURL, extra...)
	// A query before the first list is a SERVFAIL by design: wait it out.
	harness.Eventually(t, 10*time.Second, "skydns loaded from etcd", func() error {
		if code, body, err := harness.HTTPGet(s.Metrics + "/ready"); err != nil || code != 200 {
			return fmt.Errorf("/ready %d %q %v", code, body, err)
		}
		return nil
	})
	return s
}

// startSkydnsUnloaded returns once skydns answers DNS, loaded or not.
func startSkydnsUnloaded(t testing.TB, etcdURL string, extra ...string) *skydnsProc {
	t.Helper()
	return startSkydnsServingAt(t, "", etcdURL, extra...)
}

// startSkydnsServingAt is startSkydnsUnloaded waiting for DNS answers at
// serveAddr rather than at its -addr ("": at -addr), for a config in etcd
// that moves the sockets. The process's Addr is where it was waited for.
func startSkydnsServingAt(t testing.TB, serveAddr, etcdURL string, extra ...string) *skydnsProc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	for _, arg := range extra {
		if a, ok := strings.CutPrefix(arg, "-addr="); ok {
			addr = a // A later -addr wins in skydns, and here.
		}
	}
	metricsPort := harness.FreePort(t)
	args := append([]string{"-machines=" + etcdURL, "-addr=" + addr, "-ns-rotate=false", "-domain=cluster.local."}, extra...)
	// Forwarding defaults to this machine's resolv.conf, which names no
	// loopback server: point it at a dead loopback port instead, through
	// the legacy variable, so a test can never send a query off the host.
	p := harness.Start(t, "skydns", harness.Binary(t, "skydns"), args,
		fmt.Sprintf("PROMETHEUS_PORT=%d", metricsPort), "SKYDNS_NAMESERVERS=127.0.0.1:9")
	if serveAddr == "" {
		serveAddr = addr
	}
	s := &skydnsProc{Process: p, Addr: serveAddr, Metrics: fmt.Sprintf("http://127.0.0.1:%d", metricsPort)}
	harness.Eventually(t, 10*time.Second, "skydns serving DNS", func() error {
		if exited, err := p.Exited(); exited {
			t.Fatalf("skydns exited: %v", err)
		}
		_, err := harness.Exchange(serveAddr, "udp", "cluster.local.", dns.TypeSOA)
		return err
	})
	return s
}

func (s *skydnsProc) metric(t *testing.T, name string) string {
	t.Helper()
	return scrape(t, s.Metrics+"/metrics", name)
}

// metricIs says whether the sample name reads want, for Eventually or a
// plain check.
func (s *skydnsProc) metricIs(t *testing.T, name, want string) error {
	t.Helper()
	if v := s.metric(t, name); v != want {
		return fmt.Errorf("%s = %q, want %s", name, v, want)
	}
	return nil
}

// answersTestService checks the normal query every attack and fault test
// ends with: svcName over proto answers svcVal's 1.2.3.4.
func (s *skydnsProc) answersTestService(proto string) error {
	m, err := harness.Exchange(s.Addr, proto, svcName, dns.TypeA)
	return harness.WantAnswers(m, err, "1.2.3.4")
}

// scrape is the value of the sample named name (labels included, as
// exposed: `x_total{reason="y"}`) at a /metrics url, or "" if absent.
func scrape(t *testing.T, url, name string) string {
	t.Helper()
	_, body, err := harness.HTTPGet(url)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := sample(body, name)
	return v
}

const (
	svcKey  = "/skydns/local/cluster/svc/default/testservice/b882ad2c"
	svcVal  = `{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}`
	srvKey  = "/skydns/local/cluster/svc/default/testservice/_tcp/_http1/b882ad2c"
	srvVal  = `{"host":"testservice.default.svc.cluster.local.","port":80,"priority":10,"weight":10,"ttl":30}`
	svcName = "testservice.default.svc.cluster.local."
)

func TestLegacyArgumentsAnswerFromEtcd(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, svcKey, svcVal)
	etcd.Put(c, srvKey, srvVal)
	s := startSkydns(t, etcd.URL)

	tests := []struct {
		args    []string
		status  string
		answers []string
	}{
		{[]string{svcName, "A"}, "NOERROR", []string{svcName + " 30 IN A 1.2.3.4"}},
		{[]string{svcName, "A", "+tcp"}, "NOERROR", []string{svcName + " 30 IN A 1.2.3.4"}},
		{[]string{"_http1._tcp." + svcName, "SRV", "+notcp"}, "NOERROR", []string{"_http1._tcp." + svcName + " 30 IN SRV 10 100 80 " + svcName}},
		{[]string{"_http1._tcp." + svcName, "SRV", "+tcp"}, "NOERROR", []string{"_http1._tcp." + svcName + " 30 IN SRV 10 100 80 " + svcName}},
		{[]string{svcName, "SRV"}, "NOERROR", []string{svcName + " 30 IN SRV 10 100 0 b882ad2c." + svcName}},
		{[]string{"KuBeRnEtEs-Nope.default.svc.cluster.local", "A"}, "NXDOMAIN", nil},
		{[]string{"TestService.Default.svc.cluster.local", "A"}, "NOERROR", []string{"TestService.Default.svc.cluster.local. 30 IN A 1.2.3.4"}},
		{[]string{svcName, "AAAA"}, "NOERROR", nil},
		{[]string{svcName, "ANY"}, "REFUSED", nil},
		{[]string{"version.bind", "TXT", "CH"}, "NOERROR", []string{`version.bind. 0 CH TXT "2.5.2c"`}},
	}
	for _, tc := range tests {
		status, answers := harness.Dig(t, s.Addr, tc.args...)
		if status != tc.status || !slices.Equal(answers, tc.answers) {
			t.Errorf("dig %v: %s %q, want %s %q", tc.args, status, answers, tc.status, tc.answers)
		}
	}
	if code, body, _ := harness.HTTPGet(s.Metrics + "/ready"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/ready = %d %q", code, body)
	}
}

func TestWatchAddsAndDeletes(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	s := startSkydns(t, etcd.URL)
	name := "late.default.svc.cluster.local."
	key := "/skydns/local/cluster/svc/default/late/abc"

	if m, err := harness.Exchange(s.Addr, "udp", name, dns.TypeA); harness.WantRcode(m, err, dns.RcodeNameError) != nil {
		t.Fatalf("before the write: %v %v", m, err)
	}
	etcd.Put(c, key, `{"host":"10.9.0.1","ttl":30}`)
	harness.Eventually(t, 10*time.Second, "written record answered", func() error {
		m, err := harness.Exchange(s.Addr, "udp", name, dns.TypeA)
		return harness.WantAnswers(m, err, "10.9.0.1")
	})
	etcd.Put(c, key, `{"host":"10.9.0.2","ttl":30}`)
	harness.Eventually(t, 10*time.Second, "updated record answered", func() error {
		m, err := harness.Exchange(s.Addr, "tcp", name, dns.TypeA)
		return harness.WantAnswers(m, err, "10.9.0.2")
	})
	etcd.Delete(c, key)
	harness.Eventually(t, 10*time.Second, "deleted record gone", func() error {
		m, err := harness.Exchange(s.Addr, "udp", name, dns.TypeA)
		return harness.WantRcode(m, err, dns.RcodeNameError)
	})
}

// etcd dies while queries run: every query still gets its answer from the
// index, also the ones sent after skydns saw etcd go; readiness and the
// watch metric say etcd is gone; and once etcd is back, a record written
// then is answered.
func TestEtcdKilledWhileQueriesRun(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, svcKey, svcVal)
	s := startSkydns(t, etcd.URL)

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s.answersTestService("udp") == nil {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
			time.Sleep(5 * time.Millisecond) // Pacing, not a wait for anything.
		}
	}()
	waitGoodAnswers(t, &ok, 10, "before etcd is killed")
	etcd.Stop()
	harness.Eventually(t, 15*time.Second, "skydns notices etcd is gone", func() error {
		if err := s.metricIs(t, "skydns_etcd_watch_up", "0"); err != nil {
			return err
		}
		code, body, err := harness.HTTPGet(s.Metrics + "/ready")
		if err != nil || code != 200 || !strings.HasPrefix(body, "stale:") {
			return fmt.Errorf("/ready = %d %q %v", code, body, err)
		}
		return nil
	})
	waitGoodAnswers(t, &ok, ok.Load()+20, "while skydns knows etcd is down")
	etcd.Start()
	c = etcd.Client()
	etcd.Put(c, "/skydns/local/cluster/svc/default/after/x", `{"host":"10.8.0.1"}`)
	harness.Eventually(t, 15*time.Second, "record written after etcd returned", func() error {
		m, err := harness.Exchange(s.Addr, "udp", "after.default.svc.cluster.local.", dns.TypeA)
		return harness.WantAnswers(m, err, "10.8.0.1")
	})
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 50 {
		t.Fatalf("%d good answers, %d bad while etcd was killed and restarted", ok.Load(), failed.Load())
	}
	if v := s.metric(t, "skydns_etcd_watch_up"); v != "1" {
		t.Fatalf("skydns_etcd_watch_up = %q after etcd returned", v)
	}
}

// waitGoodAnswers waits until the querying goroutine has counted at least
// n good answers: proof that queries ran, where a fixed sleep would only
// hope they did.
func waitGoodAnswers(t *testing.T, ok *atomic.Int64, n int64, when string) {
	t.Helper()
	harness.Eventually(t, 15*time.Second, fmt.Sprintf("%d good answers %s", n, when), func() error {
		if got := ok.Load(); got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

func TestStartedBeforeEtcd(t *testing.T) {
	// Reserve the ports, start skydns against them, then start etcd there.
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, svcKey, svcVal)
	etcd.Stop()
	s := startSkydnsUnloaded(t, etcd.URL)
	for _, network := range []string{"udp", "tcp"} {
		m, err := harness.Exchange(s.Addr, network, svcName, dns.TypeA)
		if err := harness.WantRcode(m, err, dns.RcodeServerFailure); err != nil {
			t.Fatalf("%s before etcd: %v", network, err)
		}
		m, err = harness.Exchange(s.Addr, network, "missing.default.svc.cluster.local.", dns.TypeA)
		if err := harness.WantRcode(m, err, dns.RcodeServerFailure); err != nil {
			t.Fatalf("%s before etcd, unknown name must not be NXDOMAIN: %v", network, err)
		}
	}
	if code, _, _ := harness.HTTPGet(s.Metrics + "/ready"); code != 503 {
		t.Fatalf("/ready before etcd = %d, want 503", code)
	}
	harness.Eventually(t, 10*time.Second, "the outage is logged", func() error {
		// The first read of etcd is the config key's, before the first list.
		if !strings.Contains(s.Log(), "cannot read config from etcd") {
			return fmt.Errorf("no log line yet")
		}
		return nil
	})
	etcd.Start()
	harness.Eventually(t, 15*time.Second, "answers once etcd is up", func() error {
		return s.answersTestService("udp")
	})
	if code, _, _ := harness.HTTPGet(s.Metrics + "/ready"); code != 200 {
		t.Fatalf("/ready after load = %d", code)
	}
}

func TestMalformedValueNextToGoodOnes(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/local/cluster/svc/default/mixed/good1", `{"host":"10.7.0.1"}`)
	etcd.Put(c, "/skydns/local/cluster/svc/default/mixed/bad", `{"host":`)
	s := startSkydns(t, etcd.URL)
	etcd.Put(c, "/skydns/local/cluster/svc/default/mixed/good2", `{"host":"10.7.0.2"}`)
	etcd.Put(c, "/skydns/local/cluster/svc/default/mixed/bad2", `not json`)
	harness.Eventually(t, 10*time.Second, "good records answered", func() error {
		m, err := harness.Exchange(s.Addr, "udp", "mixed.default.svc.cluster.local.", dns.TypeA)
		if err != nil {
			return err
		}
		got := harness.Answers(m)
		slices.Sort(got)
		if !slices.Equal(got, []string{"10.7.0.1", "10.7.0.2"}) {
			return fmt.Errorf("answers %v", got)
		}
		// bad2 was written after good2: seeing good2 does not mean bad2 was read.
		if err := s.metricIs(t, "skydns_etcd_malformed_values_total", "2"); err != nil {
			return err
		}
		return nil
	})
	if err := s.metricIs(t, "skydns_etcd_malformed_values_total", "2"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.Log(), "skipping malformed record"); n != 2 {
		t.Fatalf("malformed values logged %d times, want once each", n)
	}
}

// A key that is not a name (a segment with a dot) is skipped and counted:
// it neither answers for the name whose labels it runs together, nor, when
// deleted, hides that name, which other keys hold.
func TestKeyThatIsNotANameIsSkipped(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/local/cluster/svc/default/web/x", `{"host":"10.7.1.1"}`)
	s := startSkydns(t, etcd.URL)
	etcd.Put(c, "/skydns/local/cluster/svc/web.default", `{"host":"10.66.66.66"}`)
	harness.Eventually(t, 10*time.Second, "the dotted key counted as malformed", func() error {
		if err := s.metricIs(t, "skydns_etcd_malformed_values_total", "1"); err != nil {
			return err
		}
		return nil
	})
	m, err := harness.Exchange(s.Addr, "udp", "web.default.svc.cluster.local.", dns.TypeA)
	if err := harness.WantAnswers(m, err, "10.7.1.1"); err != nil {
		t.Fatalf("with the dotted key written: %v", err)
	}
	if _, err := c.Delete(t.Context(), "/skydns/local/cluster/svc/web.default"); err != nil {
		t.Fatal(err)
	}
	// The delete is applied in order with a later put: once that put is
	// answered, the delete has been seen too.
	etcd.Put(c, "/skydns/local/cluster/svc/default/after/x", `{"host":"10.7.1.2"}`)
	harness.Eventually(t, 10*time.Second, "a write after the delete answered", func() error {
		m, err := harness.Exchange(s.Addr, "udp", "after.default.svc.cluster.local.", dns.TypeA)
		return harness.WantAnswers(m, err, "10.7.1.2")
	})
	m, err = harness.Exchange(s.Addr, "udp", "web.default.svc.cluster.local.", dns.TypeA)
	if err := harness.WantAnswers(m, err, "10.7.1.1"); err != nil {
		t.Fatalf("after the dotted key was deleted: %v", err)
	}
	if n := strings.Count(s.Log(), "skipping malformed record"); n != 1 || s.metric(t, "skydns_etcd_malformed_values_total") != "1" {
		t.Fatalf("the dotted key logged %d times, counted %s; want once each, its delete neither", n, s.metric(t, "skydns_etcd_malformed_values_total"))
	}
}

// A value no reply could carry (a host that is no name, a port past 16
// bits) is skipped and counted; the records beside it are still served.
// Before, the bad host left the whole SRV query without a reply, and port
// 70000 went out as 4464.
func TestUnservableValuesAreSkipped(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	s := startSkydns(t, etcd.URL)
	etcd.Put(c, "/skydns/local/cluster/svc/default/web/_tcp/_http/bad", `{"host":"a..b","port":80}`)
	etcd.Put(c, "/skydns/local/cluster/svc/default/web/_tcp/_http/big", `{"host":"10.7.2.2","port":70000}`)
	etcd.Put(c, "/skydns/local/cluster/svc/default/web/_tcp/_http/good", `{"host":"10.7.2.1","port":80}`)
	harness.Eventually(t, 10*time.Second, "the good SRV record answered", func() error {
		m, err := harness.Exchange(s.Addr, "udp", "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV)
		return harness.WantAnswers(m, err, "10 100 80 good._http._tcp.web.default.svc.cluster.local.")
	})
	if err := s.metricIs(t, "skydns_etcd_malformed_values_total", "2"); err != nil {
		t.Fatal(err)
	}
	if log := s.Log(); strings.Count(log, "skipping malformed record") != 2 || !strings.Contains(log, "/_http/bad") || !strings.Contains(log, "/_http/big") {
		t.Fatalf("want one log line each for bad and big:\n%s", log)
	}
}

// Garbage on the wire gets FORMERR or nothing, and the server keeps going.
func TestMalformedPackets(t *testing.T) {
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), svcKey, svcVal)
	s := startSkydns(t, etcd.URL)
	good := new(dns.Msg)
	good.SetQuestion(svcName, dns.TypeA)
	packed, _ := good.Pack()
	packets := [][]byte{
		{0x00},
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x01}, // Header cut short.
		packed[:len(packed)-3],               // Question cut short.
		{0x12, 0x34, 0x01, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0}, // Five questions, none there.
		[]byte(strings.Repeat("\xff", 300)),
	}
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "udp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, p := range packets {
		reply, err := roundTrip(t, conn, p, 300*time.Millisecond)
		if err != nil {
			continue // Dropped: allowed.
		}
		m := new(dns.Msg)
		if err := m.Unpack(reply); err != nil {
			t.Errorf("packet %d: a reply that does not parse (%v): % x", i, err, reply)
		} else if m.Rcode != dns.RcodeFormatError && m.Rcode != dns.RcodeNotImplemented {
			t.Errorf("packet %d: rcode %s, want FORMERR or no reply", i, dns.RcodeToString[m.Rcode])
		}
	}
	if err := s.answersTestService("udp"); err != nil {
		t.Fatalf("after garbage: %v", err)
	}
	if exited, err := s.Exited(); exited {
		t.Fatalf("skydns exited: %v", err)
	}
}

// Requests that are not questions for the zone's data get the rcode that
// says so, from the binary: NOTIFY is not answered (nor forwarded) as a
// query, zone transfers and classes other than IN and CHAOS are refused;
// a normal query is still answered at once.
func TestOddRequestsThroughTheBinary(t *testing.T) {
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), svcKey, svcVal)
	s := startSkydns(t, etcd.URL, "-nameservers="+startFakeUpstream(t), "-rtimeout=300ms")
	tests := []struct {
		name    string
		network string
		req     func() *dns.Msg
		rcode   int
	}{
		{"NOTIFY in the zone", "udp", func() *dns.Msg { return new(dns.Msg).SetNotify("cluster.local.") }, dns.RcodeNotImplemented},
		{"NOTIFY for a forwarded name", "udp", func() *dns.Msg {
			m := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA)
			m.Opcode = dns.OpcodeNotify
			return m
		}, dns.RcodeNotImplemented},
		{"AXFR", "tcp", func() *dns.Msg { return new(dns.Msg).SetAxfr("cluster.local.") }, dns.RcodeRefused},
		{"IXFR of a forwarded zone", "tcp", func() *dns.Msg { return new(dns.Msg).SetQuestion("example.com.", dns.TypeIXFR) }, dns.RcodeRefused},
		{"class HS", "udp", func() *dns.Msg {
			m := new(dns.Msg).SetQuestion(svcName, dns.TypeA)
			m.Question[0].Qclass = dns.ClassHESIOD
			return m
		}, dns.RcodeRefused},
	}
	for _, tc := range tests {
		c := &dns.Client{Net: tc.network, Timeout: 2 * time.Second}
		m, _, err := c.Exchange(tc.req(), s.Addr)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if m.Rcode != tc.rcode || len(m.Answer) != 0 {
			t.Errorf("%s: rcode %s with %d answers, want %s and none", tc.name, dns.RcodeToString[m.Rcode], len(m.Answer), dns.RcodeToString[tc.rcode])
		}
	}
	if err := s.answersTestService("udp"); err != nil {
		t.Fatalf("a query after the odd requests: %v", err)
	}
}

// A fake upstream on loopback stands in for the cluster's resolvers.
func startFakeUpstream(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case strings.EqualFold(q.Name, "www.example.com.") && q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP("192.0.2.53")}}
		case strings.EqualFold(q.Name, "www.example.com.") && q.Qtype == dns.TypeAAAA:
			m.Answer = []dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 300}, AAAA: net.ParseIP("2001:db8::53")}}
		case strings.EqualFold(q.Name, "www.miek.nl.") && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA):
			// An alias, as upstreams answer them: the CNAME, then the target's records.
			m.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 300}, Target: "a.miek.nl."}}
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "a.miek.nl.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP("192.0.2.80")})
			} else {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: "a.miek.nl.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 300}, AAAA: net.ParseIP("2001:db8::80")})
			}
		case strings.EqualFold(q.Name, "123.2.0.192.in-addr.arpa.") && q.Qtype == dns.TypePTR:
			m.Answer = []dns.RR{&dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 300}, Ptr: "my.test."}}
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestForwardingThroughTheBinary(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/local/cluster/svc/default/ext/x", `{"host":"www.example.com","ttl":10}`)
	etcd.Put(c, "/skydns/arpa/in-addr/10/0/0/1", `{"host":"kubernetes.default.svc.cluster.local."}`)
	upstream := startFakeUpstream(t)
	// A dead first server: the forwarder must fail over to the second.
	s := startSkydns(t, etcd.URL, "-nameservers=127.0.0.1:9,"+upstream, "-rtimeout=300ms")

	tests := []struct {
		args    []string
		status  string
		answers []string
	}{
		{[]string{"www.example.com", "A"}, "NOERROR", []string{"www.example.com. 300 IN A 192.0.2.53"}},
		{[]string{"nothing.example.com", "A"}, "NXDOMAIN", nil},
		{[]string{"-x", "192.0.2.123"}, "NOERROR", []string{"123.2.0.192.in-addr.arpa. 300 IN PTR my.test."}},
		{[]string{"-x", "10.0.0.1"}, "NOERROR", []string{"1.0.0.10.in-addr.arpa. 3600 IN PTR kubernetes.default.svc.cluster.local."}},
		{[]string{"ext.default.svc.cluster.local", "A"}, "NOERROR", []string{
			"ext.default.svc.cluster.local. 10 IN CNAME www.example.com.", "www.example.com. 10 IN A 192.0.2.53"}},
		{[]string{"metadata", "A"}, "SERVFAIL", nil},
	}
	for _, tc := range tests {
		status, answers := harness.Dig(t, s.Addr, tc.args...)
		if status != tc.status || !slices.Equal(answers, tc.answers) {
			t.Errorf("dig %v: %s %q, want %s %q", tc.args, status, answers, tc.status, tc.answers)
		}
	}
}

// The response cache keeps apart what changes an answer, and replies,
// fresh or cached, are fitted to each client: an RD=0 query's empty answer
// does not reach an RD=1 client, and an upstream's OPT record does not
// reach a client that sent no EDNS0.
func TestResponseCacheAndFittingThroughTheBinary(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.RecursionDesired { // Like a resolver that only answers from its cache without RD.
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.ParseIP("192.0.2.7")}}
		}
		m.SetEdns0(4096, false) // Asked for or not.
		_ = w.WriteMsg(m)
	})}
	go func() { _ = upstream.ActivateAndServe() }()
	t.Cleanup(func() { _ = upstream.Shutdown() })
	etcd := harness.StartEtcd(t)
	s := startSkydns(t, etcd.URL, "-nameservers="+pc.LocalAddr().String(), "-rcache=100")
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	for i, tc := range []struct {
		rd, edns bool
		answers  int
	}{
		{false, false, 0}, {true, false, 1}, {true, true, 1}, {true, false, 1}, {false, false, 0},
	} {
		req := new(dns.Msg)
		req.SetQuestion("cached.example.org.", dns.TypeA)
		req.RecursionDesired = tc.rd
		if tc.edns {
			req.SetEdns0(1232, false)
		}
		m, _, err := c.ExchangeContext(t.Context(), req, s.Addr)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if len(m.Answer) != tc.answers || (m.IsEdns0() != nil) != tc.edns {
			t.Fatalf("query %d (rd %v, edns %v): %d answers, OPT %v", i, tc.rd, tc.edns, len(m.Answer), m.IsEdns0())
		}
	}
}

// An SRV target outside the zone brings upstream's A answer whole, its
// CNAME included, and the AAAA records of its AAAA answer into the
// additional section, as SkyDNS's own "*.cname2" case has it; two records
// with the same target are one SRV.
func TestOutOfZoneSRVTargetThroughTheBinary(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/local/cluster/svc/default/cname2/ext1", `{"host":"www.miek.nl"}`)
	etcd.Put(c, "/skydns/local/cluster/svc/default/cname2/ext2", `{"host":"www.miek.nl"}`)
	s := startSkydns(t, etcd.URL, "-nameservers="+startFakeUpstream(t), "-rtimeout=300ms")

	var m *dns.Msg
	harness.Eventually(t, 10*time.Second, "SRV *.cname2 answered", func() error {
		var err error
		m, err = harness.Exchange(s.Addr, "udp", "*.cname2.default.svc.cluster.local.", dns.TypeSRV)
		return harness.WantRcode(m, err, dns.RcodeSuccess)
	})
	if got, want := harness.Answers(m), []string{"10 100 0 www.miek.nl."}; !slices.Equal(got, want) {
		t.Fatalf("answer %q, want %q", got, want)
	}
	var extra []string
	for _, rr := range m.Extra {
		extra = append(extra, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(extra)
	want := []string{"a.miek.nl. 60 IN A 192.0.2.80", "a.miek.nl. 60 IN AAAA 2001:db8::80", "www.miek.nl. 60 IN CNAME a.miek.nl."}
	if !slices.Equal(extra, want) {
		t.Fatalf("additional %q, want %q", extra, want)
	}
}

func TestTruncationOverUDPAndFullOverTCP(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	for i := 0; i < 100; i++ {
		etcd.Put(c, fmt.Sprintf("/skydns/local/cluster/svc/default/big/%d", i), fmt.Sprintf(`{"host":"10.6.0.%d"}`, i))
	}
	s := startSkydns(t, etcd.URL)
	name := "big.default.svc.cluster.local."
	m, err := harness.Exchange(s.Addr, "udp", name, dns.TypeA)
	if err != nil || !m.Truncated || len(m.Answer) >= 100 {
		t.Fatalf("udp without EDNS: TC=%v answers=%d err=%v", m != nil && m.Truncated, len(m.Answer), err)
	}
	m, err = harness.Exchange(s.Addr, "tcp", name, dns.TypeA)
	if err != nil || m.Truncated || len(m.Answer) != 100 {
		t.Fatalf("tcp: TC=%v answers=%d err=%v", m.Truncated, len(m.Answer), err)
	}
	// dig retries over TCP on TC by itself and gets everything.
	if _, answers := harness.Dig(t, s.Addr, name, "A", "+noedns"); len(answers) != 100 {
		t.Fatalf("dig after TC fallback: %d answers", len(answers))
	}
	// Whatever the client advertises, a UDP reply stops at --max-udp-size
	// (1232 by default), counted.
	wire := exchangeRaw(t, s.Addr, new(dns.Msg).SetQuestion(name, dns.TypeA).SetEdns0(65535, false))
	m = new(dns.Msg)
	if err := m.Unpack(wire); err != nil || !m.Truncated || len(wire) > 1232 || len(m.Answer) == 0 {
		t.Fatalf("udp with a 65535-byte EDNS buffer: TC=%v, %d bytes, %d answers, err=%v", m.Truncated, len(wire), len(m.Answer), err)
	}
	if err := s.metricIs(t, "skydns_dns_udp_capped_total", "1"); err != nil {
		t.Fatal(err)
	}
	// With the ceiling raised, a client's 4096-byte buffer takes it all.
	raised := startSkydns(t, etcd.URL, "--max-udp-size=4096")
	if _, answers := harness.Dig(t, raised.Addr, name, "A", "+bufsize=4096", "+ignore"); len(answers) != 100 {
		t.Fatalf("dig with a 4096-byte EDNS buffer: %d answers", len(answers))
	}
}

// exchangeRaw sends req over UDP and returns the reply's bytes as they came.
func exchangeRaw(t *testing.T, addr string, req *dns.Msg) []byte {
	t.Helper()
	packed, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	reply, err := roundTrip(t, conn, packed, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// roundTrip writes one datagram and reads the reply, waiting at most wait;
// the error is the read's (no reply in time).
func roundTrip(t *testing.T, conn net.Conn, packet []byte, wait time.Duration) ([]byte, error) {
	t.Helper()
	if _, err := conn.Write(packet); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	return buf[:n], err
}

// TCP connections are bounded: at --tcp-max-conns a new connection takes
// the place of the one idle longest (so idle connections cannot lock other
// clients out), counted; UDP goes on throughout.
func TestTCPConnectionLimitThroughTheBinary(t *testing.T) {
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), svcKey, svcVal)
	s := startSkydns(t, etcd.URL, "--tcp-max-conns=2")
	var held []net.Conn
	for range 2 {
		c, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	harness.Eventually(t, 10*time.Second, "two idle connections held", func() error {
		if err := s.metricIs(t, "skydns_tcp_connections", "2"); err != nil {
			return err
		}
		return nil
	})
	if err := s.answersTestService("tcp"); err != nil {
		t.Fatalf("a third TCP client while two idle connections fill the limit: %v", err)
	}
	if err := s.metricIs(t, "skydns_tcp_connections_evicted_total", "1"); err != nil {
		t.Fatal(err)
	}
	_ = held[0].SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := held[0].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection idle longest was not closed: %v", err)
	}
	if err := s.answersTestService("udp"); err != nil {
		t.Fatalf("UDP at the TCP limit: %v", err)
	}
}

// Clients that pipeline queries for a large answer and never read hold
// nothing for long: each connection ends at its first failed write (2 s),
// not after every pipelined query has waited out its own deadline.
func TestTCPSlowReadersAreLetGoThroughTheBinary(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, svcKey, svcVal)
	// About 56 KB of answer: 128 of them are more than the socket buffers
	// hold (up to 4 MiB sending, and the client's small receive buffer).
	for i := range 3500 {
		etcd.Put(c, fmt.Sprintf("/skydns/local/cluster/svc/default/big/%d", i), fmt.Sprintf(`{"host":"10.9.%d.%d"}`, i/256, i%256))
	}
	s := startSkydns(t, etcd.URL)
	req := new(dns.Msg)
	req.SetQuestion("big.default.svc.cluster.local.", dns.TypeA)
	packed, err := req.Pack()
	if err != nil {
		t.Fatal(err)
	}
	framed := append([]byte{byte(len(packed) >> 8), byte(len(packed))}, packed...)
	for range 4 {
		conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.(*net.TCPConn).SetReadBuffer(4096)
		if _, err := conn.Write(bytes.Repeat(framed, 128)); err != nil { // Never read.
			t.Fatal(err)
		}
	}
	harness.Eventually(t, 30*time.Second, "every slow reader let go", func() error {
		if err := s.metricIs(t, "skydns_tcp_connections", "0"); err != nil {
			return err
		}
		return nil
	})
	if err := s.answersTestService("tcp"); err != nil {
		t.Fatalf("a TCP query after the slow readers: %v", err)
	}
}

// Upstream queries in flight are bounded: toward an upstream that never
// answers, --max-forwards queries wait, one more is SERVFAIL at once and
// counted, and names in the zone are answered meanwhile.
func TestForwardsInFlightBoundedThroughTheBinary(t *testing.T) {
	var arrived atomic.Int32
	blackHole := startBlackHole(t, func(m *dns.Msg) {
		if m.Question[0].Qtype != dns.TypeHINFO { // Not the loop probe.
			arrived.Add(1)
		}
	})
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), svcKey, svcVal)
	s := startSkydns(t, etcd.URL, "-nameservers="+blackHole, "-rtimeout=20s", "--max-forwards=2")
	for i := range 2 {
		go func() { _, _ = harness.Exchange(s.Addr, "udp", fmt.Sprintf("held%d.example.org.", i), dns.TypeA) }()
	}
	harness.Eventually(t, 10*time.Second, "two queries held upstream", func() error {
		if n := arrived.Load(); n != 2 {
			return fmt.Errorf("upstream got %d queries", n)
		}
		return nil
	})
	m, err := harness.Exchange(s.Addr, "udp", "third.example.org.", dns.TypeA)
	if err := harness.WantRcode(m, err, dns.RcodeServerFailure); err != nil {
		t.Fatalf("a query past --max-forwards: %v", err)
	}
	if v := s.metric(t, `skydns_forward_requests_total{kind="recursive",result="busy"}`); v != "1" {
		t.Fatalf("busy forwards %q, want 1", v)
	}
	if err := s.answersTestService("udp"); err != nil {
		t.Fatalf("an in-zone query while the upstream slots are full: %v", err)
	}
	if n := arrived.Load(); n != 2 {
		t.Fatalf("upstream got %d queries, want the 2 held", n)
	}
}

// One query's work is bounded (skydns/budget.go): eight records whose
// hosts are wildcards matching all eight again (once 1.2 s of CPU for one
// query), and ten out-of-zone CNAME targets behind an upstream that never
// answers (once no reply within 12 s), are each one prompt SERVFAIL,
// counted by the limit passed; a normal query is answered meanwhile.
func TestWorkBudgetThroughTheBinary(t *testing.T) {
	blackHole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackHole.Close() // Read by nobody: every query to it times out.
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, svcKey, svcVal)
	for i := range 8 {
		pick := func(bit int, name string) string { return []string{name, "any"}[i>>bit&1] }
		target := fmt.Sprintf("any.t.%s.%s.%s", pick(0, "svc"), pick(1, "cluster"), pick(2, "local"))
		etcd.Put(c, fmt.Sprintf("/skydns/local/cluster/svc/t/c%d", i), fmt.Sprintf(`{"host":%q}`, target))
	}
	for i := range 10 {
		etcd.Put(c, fmt.Sprintf("/skydns/local/cluster/svc/default/ext/e%d", i), fmt.Sprintf(`{"host":"h%d.example.org"}`, i))
	}
	s := startSkydns(t, etcd.URL, "-nameservers="+blackHole.LocalAddr().String(), "-rtimeout=300ms")
	for _, tc := range []struct{ name, limit string }{
		{"t.svc.cluster.local.", "chases"},
		{"ext.default.svc.cluster.local.", "upstream"},
	} {
		m, err := harness.Exchange(s.Addr, "tcp", tc.name, dns.TypeA)
		if err := harness.WantRcode(m, err, dns.RcodeServerFailure); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if v := s.metric(t, fmt.Sprintf(`skydns_dns_budget_exceeded_total{limit=%q}`, tc.limit)); v != "1" {
			t.Fatalf("%s: skydns_dns_budget_exceeded_total{limit=%q} = %q, want 1", tc.name, tc.limit, v)
		}
	}
	if err := s.answersTestService("udp"); err != nil {
		t.Fatalf("a normal query after the others: %v", err)
	}
}

func TestCleanShutdownOnSIGTERM(t *testing.T) {
	etcd := harness.StartEtcd(t)
	s := startSkydns(t, etcd.URL)
	if err := s.Stop(5 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !strings.Contains(s.Log(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", s.Log())
	}
}

func TestBadFlagsExitWithOneLine(t *testing.T) {
	tests := []struct {
		binary string
		args   []string
	}{
		{"skydns", []string{"-addr=localhost:53"}},
		{"skydns", []string{"-no-such-flag"}},
		{"skydns", []string{"-domain="}},
		{"skydns", []string{"-rtimeout=forever"}},
		{"skydns", []string{"--log-format=xml"}},
		{"skydns", []string{"--answer-cache=-1"}},
		{"skydns", []string{"-addr=127.0.0.1:5399", "-nameservers=127.0.0.1:5399"}},             // Itself: a loop.
		{"skydns", []string{"-addr=0.0.0.0:5399", "-nameservers=192.0.2.1:53,127.0.0.53:5399"}}, // Itself, on loopback.
		{"kube2sky", []string{"--etcd-server=127.0.0.1:4001"}},
		{"kube2sky", []string{"--kube_master_url=http://:8080"}},
		{"kube2sky", []string{"--etcd_mutation_timeout=soon"}},
		{"kube2sky", []string{"-healthz-port=0"}},
		{"kube2sky", []string{"--no-such-flag"}},
	}
	for _, tc := range tests {
		binary, args := tc.binary, tc.args
		p := harness.Start(t, binary, harness.Binary(t, binary), args)
		harness.Eventually(t, 5*time.Second, "exit", func() error {
			if exited, _ := p.Exited(); !exited {
				return fmt.Errorf("still running")
			}
			return nil
		})
		_, err := p.Exited()
		out := strings.TrimSpace(p.Log())
		if err == nil || strings.Count(out, "\n") != 0 || !strings.HasPrefix(out, binary+": ") {
			t.Errorf("%v: exit %v, output %q: want non-zero and one line", args, err, out)
		}
	}
}
