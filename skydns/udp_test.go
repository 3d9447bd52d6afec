package skydns

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/ipv4"
	"golang.org/x/sync/errgroup"
)

// udpPair is the same handler setup served two ways: by miekg/dns's
// server on one socket, as skydns served UDP before, and by skydns's own
// batched readers on several SO_REUSEPORT sockets. Each has its own
// metrics registry.
type udpPair struct {
	miekg, batched net.Addr
	regs           [2]*prometheus.Registry
}

func newUDPPair(t *testing.T, sockets int) *udpPair {
	t.Helper()
	ix := loadIndex(t, testRecords)
	p := &udpPair{regs: [2]*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}}
	handler := func(reg *prometheus.Registry) *Handler {
		return newTestHandler(t, newTestConfig(), ix, func(d *Deps) { d.Metrics = NewMetrics(reg, ix) })
	}
	p.miekg = serveUDP(t, handler(p.regs[0]))
	p.batched = serveBatched(t, handler(p.regs[1]), "127.0.0.1:0", sockets)
	return p
}

// serveBatched serves h on sockets UDP sockets on addr, as Run does,
// until the test ends.
func serveBatched(t testing.TB, h *Handler, addr string, sockets int) net.Addr {
	t.Helper()
	conns, err := listenUDP(context.Background(), addr, sockets)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	stopped := serveUDPSockets(ctx, &g, conns, func() *Handler { return h })
	t.Cleanup(func() {
		cancel()
		<-stopped
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	})
	return conns[0].LocalAddr()
}

// exchangeRaw sends b from a fresh socket and returns the reply's bytes,
// nil if none came within wait.
func exchangeRaw(t testing.TB, addr net.Addr, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := new(net.Dialer).DialContext(context.Background(), "udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func packQuery(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// udpQuery is a query for name and qtype with id, as a stub resolver sends it.
func udpQuery(name string, qtype uint16, id uint16) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.Id = id
	return m
}

// rawCases are datagrams for the UDP comparison: the packed path's
// queries and their near misses, everything else the chain answers, and
// malformed and oversize packets.
func rawCases(t testing.TB) []struct {
	name string
	b    []byte
} {
	withEDNS := func(m *dns.Msg, size uint16, do bool) *dns.Msg { return m.SetEdns0(size, do) }
	cookie := udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 7).SetEdns0(1232, false)
	cookie.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"}}
	padded := udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 8).SetEdns0(4096, false)
	padded.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_PADDING{Padding: make([]byte, 600)}}
	noRD := udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 9)
	noRD.RecursionDesired = false
	cd := udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 10)
	cd.CheckingDisabled = true
	chaos := udpQuery("id.server.", dns.TypeTXT, 11)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	hit := packQuery(t, udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 0x1234))
	set := func(b []byte, off int, v ...byte) []byte { c := slices.Clone(b); copy(c[off:], v); return c }
	random := make([]byte, 2000)
	for i := range random {
		random[i] = byte(i*7 + 3)
	}
	random[2] = 0 // A query, so the header check lets it through to the unpacking.
	return []struct {
		name string
		b    []byte
	}{
		{"A hit", hit},
		{"A hit, other id", set(hit, 0, 0xbe, 0xef)},
		{"AAAA", packQuery(t, udpQuery("105.server3.staging.region2.skydns.test.", dns.TypeAAAA, 2))},
		{"A NXDOMAIN", packQuery(t, udpQuery("nothing.skydns.test.", dns.TypeA, 3))},
		{"A NODATA", packQuery(t, udpQuery("105.server3.staging.region2.skydns.test.", dns.TypeA, 4))},
		{"A EDNS0 4096 DO", packQuery(t, withEDNS(udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 5), 4096, true))},
		{"A EDNS0 100", packQuery(t, withEDNS(udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 6), 100, false))},
		{"A EDNS0 cookie", packQuery(t, cookie)},
		{"A no RD", packQuery(t, noRD)},
		{"A CD", packQuery(t, cd)},
		{"A mixed case", packQuery(t, udpQuery("A.IPaddr.skydns.test.", dns.TypeA, 12))},
		{"A wildcard label", packQuery(t, udpQuery("*.ipaddr.skydns.test.", dns.TypeA, 13))},
		{"A CNAME to upstream", packQuery(t, udpQuery("external.skydns.test.", dns.TypeA, 14))},
		{"A two addresses", packQuery(t, udpQuery("ipaddr.skydns.test.", dns.TypeA, 15))},
		{"SRV", packQuery(t, udpQuery("region5.skydns.test.", dns.TypeSRV, 16))},
		{"PTR", packQuery(t, udpQuery("1.0.0.10.in-addr.arpa.", dns.TypePTR, 17))},
		{"forwarded", packQuery(t, udpQuery("www.example.com.", dns.TypeA, 18))},
		{"ANY", packQuery(t, udpQuery("a.ipaddr.skydns.test.", dns.TypeANY, 19))},
		{"CHAOS id.server", packQuery(t, chaos)},
		{"class CH A", set(hit, len(hit)-2, 0, 3)},
		{"root", packQuery(t, udpQuery(".", dns.TypeA, 20))},
		{"A with trailing bytes", append(slices.Clone(hit), 1, 2, 3)},
		{"padded past 512", packQuery(t, padded)},
		{"2000 bytes", random},
		{"short", hit[:5]},
		{"header only", hit[:12]},
		{"question cut", hit[:20]},
		{"response bit", set(hit, 2, 0x81)},
		{"opcode UPDATE", set(hit, 2, 5<<3)},
		{"opcode NOTIFY", set(hit, 2, 4<<3)},
		{"two questions counted", set(hit, 4, 0, 2)},
		{"no question", set(hit, 4, 0, 0)},
		{"an answer counted", set(hit, 6, 0, 1)},
		{"additional counted, none there", set(hit, 10, 0, 1)},
		{"compression loop", append(slices.Clone(hit[:12]), 0xc0, 12, 0, 1, 0, 1)},
		{"label of 64", append(append(slices.Clone(hit[:12]), 64), make([]byte, 70)...)},
		{"upper byte in name", set(hit, 13, 0xc3)},
		{"dot in label", set(hit, 14, '.')},
	}
}

// Every datagram is answered by the batched sockets byte for byte as by
// miekg/dns's server (or dropped by both), and both count the same
// requests, responses and packed hits and misses. Each is sent twice, so
// that packable replies are answered once built and once packed.
func TestBatchedUDPAnswersAsMiekg(t *testing.T) {
	p := newUDPPair(t, 4)
	for _, tc := range rawCases(t) {
		for round := range 2 {
			want := exchangeRaw(t, p.miekg, tc.b, 300*time.Millisecond)
			got := exchangeRaw(t, p.batched, tc.b, 300*time.Millisecond)
			if !bytes.Equal(got, want) {
				t.Errorf("%s (round %d): batched\n%x\nwant (miekg/dns's server)\n%x", tc.name, round, got, want)
			}
		}
	}
	// Each server counts a reply once it has sent it: the last may still
	// be on its way.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if slices.Equal(counters(t, p.regs[1]), counters(t, p.regs[0])) {
			break
		}
	}
	if got, want := counters(t, p.regs[1]), counters(t, p.regs[0]); !slices.Equal(got, want) {
		t.Errorf("metrics of the batched sockets\n%v\nwant\n%v", got, want)
	}
	if hits := counterValue(t, p.regs[1], "skydns_answer_cache_lookups_total", "hit"); hits < 10 {
		t.Errorf("%v packed hits: the fast path was not exercised", hits)
	}
}

// Arbitrary corruptions of queries get the same answer, or none, from
// both servers, and never stop the batched one.
func TestBatchedUDPMutatedPackets(t *testing.T) {
	p := newUDPPair(t, 2)
	rng := rand.New(rand.NewPCG(1, 2))
	var packets [][]byte
	for _, tc := range rawCases(t) {
		for range 8 {
			b := slices.Clone(tc.b)
			for range 1 + rng.IntN(3) {
				if len(b) > 0 {
					b[rng.IntN(len(b))] = byte(rng.Uint32())
				}
			}
			if rng.IntN(4) == 0 && len(b) > 0 {
				b = b[:rng.IntN(len(b))]
			}
			packets = append(packets, b)
		}
	}
	// Forwarded names would leave the process, and their answers differ.
	packets = slices.DeleteFunc(packets, func(b []byte) bool {
		m := new(dns.Msg)
		return m.Unpack(b) == nil && len(m.Question) == 1 && !dns.IsSubDomain("skydns.test.", dns.CanonicalName(m.Question[0].Name))
	})
	// Many at once, each from its own socket, so the drops wait out their
	// timeouts together; not so many that a socket's receive buffer (some
	// 200 datagrams) overflows.
	replies := make([][2][]byte, len(packets))
	var g errgroup.Group
	g.SetLimit(32)
	for i, b := range packets {
		for j, addr := range []net.Addr{p.miekg, p.batched} {
			g.Go(func() error { replies[i][j] = exchangeRaw(t, addr, b, 500*time.Millisecond); return nil })
		}
	}
	_ = g.Wait()
	for i, r := range replies {
		if !bytes.Equal(r[1], r[0]) {
			t.Errorf("packet %d %x: batched\n%x\nwant\n%x", i, packets[i], r[1], r[0])
		}
	}
	if got := exchangeRaw(t, p.batched, packQuery(t, udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 1)), time.Second); got == nil {
		t.Fatal("the batched server stopped answering")
	}
}

// Many clients at once over several sockets: every query is answered
// with its own id, and each reply counted once.
func TestBatchedUDPUnderLoad(t *testing.T) {
	ix := loadIndex(t, testRecords)
	reg := prometheus.NewRegistry()
	h := newTestHandler(t, newTestConfig(), ix, func(d *Deps) { d.Metrics = NewMetrics(reg, ix) })
	addr := serveBatched(t, h, "127.0.0.1:0", 3)
	const clients, each = 8, 200
	var g errgroup.Group
	for c := range clients {
		g.Go(func() error {
			conn, err := new(net.Dialer).DialContext(context.Background(), "udp", addr.String())
			if err != nil {
				return err
			}
			defer conn.Close()
			buf := make([]byte, 1024)
			for i := range each {
				id := uint16(c*each + i)
				if _, err := conn.Write(packQuery(t, udpQuery("a.ipaddr.skydns.test.", dns.TypeA, id))); err != nil {
					return err
				}
				_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := conn.Read(buf)
				if err != nil {
					return err
				}
				if got := binary.BigEndian.Uint16(buf[:n]); got != id || n < 12 || buf[3]&0x0f != dns.RcodeSuccess {
					t.Errorf("reply %x to query %d", buf[:n], id)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// A reply is counted once sent: the last ones may still be on their way.
	deadline := time.Now().Add(2 * time.Second)
	for counterValue(t, reg, "skydns_dns_responses_total", "NOERROR") != clients*each && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := counterValue(t, reg, "skydns_dns_responses_total", "NOERROR"); got != clients*each {
		t.Fatalf("%v responses counted, want %d", got, clients*each)
	}
}

// Sockets bound to the wildcard address answer from the address each
// query came to: a connected client takes a reply from no other. Packed
// hits and built replies alike, over IPv4 and IPv6 loopback.
func TestBatchedUDPWildcardRepliesFromTheQueriedAddress(t *testing.T) {
	h := newTestHandler(t, newTestConfig(), loadIndex(t, testRecords))
	port := serveBatched(t, h, "0.0.0.0:0", 2).(*net.UDPAddr).Port
	for _, host := range []string{"127.0.0.1", "127.0.0.2", "::1"} {
		addr := &net.UDPAddr{IP: net.ParseIP(host), Port: port}
		for round := range 2 {
			for _, q := range []*dns.Msg{udpQuery("a.ipaddr.skydns.test.", dns.TypeA, 1), udpQuery("region5.skydns.test.", dns.TypeSRV, 2)} {
				if reply := exchangeRaw(t, addr, packQuery(t, q), time.Second); reply == nil {
					t.Errorf("%s, %s round %d: no reply", host, q.Question[0].Name, round)
				}
			}
		}
	}
}

// The socket count: 1 binds as before, more share the port.
func TestListenUDPSharesThePort(t *testing.T) {
	for _, n := range []int{1, 4} {
		conns, err := listenUDP(context.Background(), "127.0.0.1:0", n)
		if err != nil {
			t.Fatal(err)
		}
		if len(conns) != n {
			t.Fatalf("%d sockets, want %d", len(conns), n)
		}
		for _, c := range conns {
			if c.LocalAddr().String() != conns[0].LocalAddr().String() {
				t.Errorf("socket on %v, the first on %v", c.LocalAddr(), conns[0].LocalAddr())
			}
		}
		closeAll(conns, nil)
	}
	// A port one socket holds without SO_REUSEPORT cannot be joined.
	held, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if conns, err := listenUDP(context.Background(), held.LocalAddr().String(), 2); err == nil {
		closeAll(conns, nil)
		t.Fatal("joined a port held without SO_REUSEPORT")
	}
}

// counters are the request, response and packed-lookup counters of reg,
// as "name{labels} value" lines, and the request-duration histograms'
// sample counts (their times differ).
func counters(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				continue
			}
			if v != 0 {
				lines = append(lines, f.GetName()+labelText(m.GetLabel())+" "+formatFloat(v))
			}
		}
	}
	return lines
}

func labelText(labels []*dto.LabelPair) string {
	s := "{"
	for _, l := range labels {
		s += l.GetName() + "=" + l.GetValue() + ","
	}
	return s + "}"
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// counterValue is the value of the counter name with one label value.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if f.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// packedKeyOf admits a datagram only if miekg/dns's server would accept
// and unpack it into a request that answerKeyOf admits under the same
// key: the fast path answers nothing ServeDNS would answer otherwise.
// The reader's borrowedKeyOf, over a text that held another name, gives
// the same key.
func FuzzPackedKeyOf(f *testing.F) {
	for _, tc := range rawCases(f) {
		f.Add(tc.b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		key, ok := packedKeyOf(b)
		text := nameText{'x', 'x', 'x', '.'}
		if borrowed, borrowedOK := text.borrowedKeyOf(b); borrowed != key || borrowedOK != ok {
			t.Fatalf("%x: borrowedKeyOf %+v, %v; packedKeyOf %+v, %v", b, borrowed, borrowedOK, key, ok)
		}
		if !ok {
			return
		}
		if action := dns.DefaultMsgAcceptFunc(headerOf(b)); action != dns.MsgAccept {
			t.Fatalf("admitted %x, which the header check answers with action %d", b, action)
		}
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("admitted %x, which does not unpack: %v", b, err)
		}
		var req request
		req.reset(m, false, testClock())
		want, wantOK := answerKeyOf(&req)
		if !wantOK || want != key {
			t.Fatalf("%x: key %+v, ServeDNS's %+v (admitted: %v)", b, key, want, wantOK)
		}
		// And the reader's request without unpacking is what unpacking makes.
		var q keyedQuery
		if got := q.unpack(b, key); !reflect.DeepEqual(got, m) {
			t.Fatalf("%x: request %#v, unpacked %#v", b, got, m)
		}
	})
}

// A reader serves every datagram itself, but never waits: queries that
// wait on upstream leave it, so with the one socket's upstream queries
// hanging, in-zone misses and hits are still answered at once. Those
// that wait are bounded by --max-forwards (2 here): the rest are SERVFAIL
// at once, and the reader goes on.
func TestUDPReaderNeverWaitsOnUpstream(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 8)
	up, _ := startUpstreamFunc(t, func(r *dns.Msg) *dns.Msg {
		arrived <- struct{}{}
		<-release // Held like an upstream that does not answer, until the test lets go.
		m := new(dns.Msg).SetReply(r)
		m.Answer = []dns.RR{newA(r.Question[0].Name, 5, net.ParseIP("192.0.2.1"))}
		return m
	})
	cfg := newTestConfig()
	cfg.Nameservers, cfg.MaxForwards, cfg.ReadTimeout = []string{up}, 2, time.Minute
	h := newTestHandler(t, cfg, loadIndex(t, testRecords))
	addr := serveBatched(t, h, "127.0.0.1:0", 1)
	// Let go before the server stops, should the test fail first: a reader
	// stuck upstream would hold its cleanup.
	letGo := sync.OnceFunc(func() { close(release) })
	t.Cleanup(letGo)

	waiting := make(chan []byte, 2)
	for i := range 2 {
		go func() {
			waiting <- exchangeRaw(t, addr, packQuery(t, udpQuery(fmt.Sprintf("w%d.example.org.", i), dns.TypeA, uint16(i))), 20*time.Second)
		}()
		<-arrived // Waiting upstream, holding a slot.
	}
	// A third forwarded query gets no slot: SERVFAIL at once. So does the
	// chase of an in-zone CNAME out of the zone, whose reply is then built
	// from the records alone (NODATA).
	for _, q := range []struct {
		name  string
		rcode int
	}{{"w2.example.org.", dns.RcodeServerFailure}, {"external.skydns.test.", dns.RcodeSuccess}} {
		if rcode := unpack(t, exchangeRaw(t, addr, packQuery(t, udpQuery(q.name, dns.TypeA, 9)), 5*time.Second)).Rcode; rcode != q.rcode {
			t.Errorf("%s with --max-forwards taken: rcode %d, want %d", q.name, rcode, q.rcode)
		}
	}
	// In-zone names, each asked twice (built, then packed).
	for range 2 {
		for _, name := range []string{"a.ipaddr.skydns.test.", "nothing.skydns.test.", "1.0.0.10.in-addr.arpa."} {
			qtype := dns.TypeA
			if strings.HasSuffix(name, ".arpa.") {
				qtype = dns.TypePTR
			}
			if got := exchangeRaw(t, addr, packQuery(t, udpQuery(name, qtype, 7)), 5*time.Second); got == nil {
				t.Fatalf("%s: no answer while two queries wait upstream", name)
			}
		}
	}
	letGo()
	for range 2 {
		if rcode := unpack(t, <-waiting).Rcode; rcode != dns.RcodeSuccess {
			t.Errorf("a query released from upstream: rcode %d", rcode)
		}
	}
}

// The reader's fallback where x/net cannot batch (unixSockets false):
// one datagram per read, with its sender, and every reply written.
func TestSingleConnReadsAndWritesOneAtATime(t *testing.T) {
	conns, err := listenUDP(context.Background(), "127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(conns, nil)
	sc := singleConn{conns[0]}
	client, err := new(net.Dialer).DialContext(context.Background(), "udp", conns[0].LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, payload := range []string{"one", "two"} {
		if _, err := client.Write([]byte(payload)); err != nil {
			t.Fatal(err)
		}
	}
	ms := []ipv4.Message{{Buffers: [][]byte{make([]byte, udpReadSize)}}, {Buffers: [][]byte{make([]byte, udpReadSize)}}}
	var got []string
	for len(got) < 2 {
		n, err := sc.ReadBatch(ms, 0)
		if err != nil || n != 1 {
			t.Fatalf("read %d datagrams: %v", n, err)
		}
		got = append(got, string(ms[0].Buffers[0][:ms[0].N]))
		if ms[0].Addr.String() != client.LocalAddr().String() {
			t.Fatalf("sender %v, want %v", ms[0].Addr, client.LocalAddr())
		}
	}
	replies := []ipv4.Message{{Buffers: [][]byte{[]byte("a")}, Addr: ms[0].Addr}, {Buffers: [][]byte{[]byte("b")}, Addr: ms[0].Addr}}
	if n, err := sc.WriteBatch(replies, 0); n != 2 || err != nil {
		t.Fatalf("wrote %d of 2: %v", n, err)
	}
	buf := make([]byte, 16)
	for _, want := range []string{"a", "b"} {
		_ = client.SetReadDeadline(time.Now().Add(time.Second))
		n, err := client.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("reply %q %v, want %q", buf[:n], err, want)
		}
	}
	if !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("read %q", got)
	}
}

// A query a UDP reader leaves to ServeDNS (here one with a cookie, which
// the fast path does not take) finds its packed reply through the
// reader's near slots, as the fast path does, so that it takes no shared
// lock either: once the shared cache has let the reply go, the slot still
// answers.
func TestReaderOffTheFastPathUsesTheNearSlots(t *testing.T) {
	name := "web.default.svc.skydns.test."
	h := newTestHandler(t, newTestConfig(), loadIndex(t, map[string]string{"a1." + name: `{"host":"10.7.0.0"}`}))
	r := benchReader(h)
	q := question(name, dns.TypeA, 1)
	q.SetEdns0(1232, false)
	opt := q.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
	wire := packQuery(t, q)
	if _, keyed := packedKeyOf(wire); keyed {
		t.Fatal("the cookie query has a key: the fast path would take it")
	}
	hits := func() uint64 {
		r.serve([]ipv4.Message{{Buffers: [][]byte{slices.Clone(wire)}, N: len(wire), Addr: clientAddr}})
		return r.tally.counts.hits.Load()
	}
	hits() // Builds the reply and keeps it.
	if n := hits(); n != 1 {
		t.Fatalf("asked again: %d packed hits, want 1", n)
	}
	for i := range h.caches.packed.shards {
		clear(h.caches.packed.shards[i].entries)
	}
	if n := hits(); n != 2 {
		t.Errorf("after the shared cache let the reply go: %d packed hits, want 2 (from the near slot)", n)
	}
}
