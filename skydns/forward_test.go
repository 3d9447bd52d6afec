package skydns

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/skydns/msg"
)

// startUpstream starts a DNS server on loopback answering every A query
// with ip, counting queries. It stops with the test.
func startUpstream(t *testing.T, ip string) (string, *atomic.Int32) {
	t.Helper()
	return startUpstreamFunc(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		if hasStubLoopOption(r) {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: rrHeader(r.Question[0].Name, dns.TypeTXT, 5), Txt: []string{"stub-marked"}})
		}
		m.Answer = append(m.Answer, newA(r.Question[0].Name, 5, net.ParseIP(ip)))
		return m
	})
}

// startUpstreamFunc starts a DNS server on loopback answering with
// answer, counting queries. It stops with the test.
func startUpstreamFunc(t *testing.T, answer func(*dns.Msg) *dns.Msg) (string, *atomic.Int32) {
	t.Helper()
	var count atomic.Int32
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		count.Add(1)
		_ = w.WriteMsg(answer(r))
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String(), &count
}

// deadAddr is a loopback UDP port nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func forwardingHandler(t *testing.T, configure func(*Config)) *Handler {
	cfg := newTestConfig()
	cfg.ReadTimeout = 300 * time.Millisecond
	configure(cfg)
	return newTestHandler(t, cfg, loadIndex(t, testRecords))
}

func query(t *testing.T, h *Handler, name string, qtype uint16) *dns.Msg {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(name, qtype)
	return ask(t, h, req, "udp")
}

func TestForwarding(t *testing.T) {
	up, count := startUpstream(t, "192.0.2.1")
	dead := deadAddr(t)
	tests := []struct {
		name      string
		servers   []string
		noRec     bool
		qname     string
		rcode     int
		wantA     string
		wantCalls int32
	}{
		{"forwarded", []string{up}, false, "www.example.org.", dns.RcodeSuccess, "192.0.2.1", 1},
		{"fails over from a dead server", []string{dead, up}, false, "www.example.org.", dns.RcodeSuccess, "192.0.2.1", 1},
		{"single label never leaves", []string{up}, false, "metadata.", dns.RcodeServerFailure, "", 0},
		{"all servers dead", []string{dead, dead}, false, "www.example.org.", dns.RcodeServerFailure, "", 0},
		{"no-rec", []string{up}, true, "www.example.org.", dns.RcodeServerFailure, "", 0},
		{"reverse with no PTR record goes upstream", []string{up}, false, "123.2.0.192.in-addr.arpa.", dns.RcodeSuccess, "", 1},
		{"suffix that is not label-aligned is not the zone", []string{up}, false, "fooskydns.test.", dns.RcodeSuccess, "192.0.2.1", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := forwardingHandler(t, func(c *Config) { c.Nameservers = tc.servers; c.NoRec = tc.noRec; c.NSRotate = false })
			before := count.Load()
			qtype := dns.TypeA
			if tc.wantA == "" && tc.rcode == dns.RcodeSuccess {
				qtype = dns.TypePTR
			}
			m := query(t, h, tc.qname, qtype)
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			if tc.wantA != "" && (len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != tc.wantA) {
				t.Fatalf("answer %v", m.Answer)
			}
			if got := count.Load() - before; got != tc.wantCalls {
				t.Fatalf("upstream saw %d queries, want %d", got, tc.wantCalls)
			}
		})
	}
}

func TestForwardCache(t *testing.T) {
	up, count := startUpstream(t, "192.0.2.7")
	now := time.Unix(1000, 0)
	cfg := newTestConfig()
	cfg.Nameservers, cfg.RCache, cfg.RCacheTTL = []string{up}, 2, 60
	h := newTestHandler(t, cfg, loadIndex(t, testRecords), func(d *Deps) { d.Clock = func() time.Time { return now } })
	for i := 0; i < 3; i++ {
		if m := query(t, h, "Cached.Example.org.", dns.TypeA); len(m.Answer) != 1 || m.Question[0].Name != "Cached.Example.org." {
			t.Fatalf("answer %v", m)
		}
	}
	if count.Load() != 1 {
		t.Fatalf("upstream saw %d queries, want 1 (cached)", count.Load())
	}
	now = now.Add(61 * time.Second)
	query(t, h, "cached.example.org.", dns.TypeA)
	if count.Load() != 2 {
		t.Fatalf("expired entry was served from cache")
	}
	for _, n := range []string{"a.example.org.", "b.example.org.", "c.example.org."} {
		query(t, h, n, dns.TypeA)
	}
	if n := h.caches.responses.len(); n != 2 {
		t.Fatalf("cache holds %d entries, capacity 2: a full cache evicts one, it does not empty", n)
	}
}

func TestStubZones(t *testing.T) {
	stub, stubCount := startUpstream(t, "198.51.100.1")
	up, upCount := startUpstream(t, "192.0.2.1")
	host, port, _ := net.SplitHostPort(stub)
	records := map[string]string{}
	for k, v := range testRecords {
		records[k] = v
	}
	records["ns1.acme.local.stub.dns.skydns.test."] = `{"host":"` + host + `","port":` + port + `}`
	cfg := newTestConfig()
	cfg.Nameservers = []string{up}
	cfg.StubZones = true
	ix := loadIndex(t, records)
	h := newTestHandler(t, cfg, ix)

	m := query(t, h, "abc.acme.local.", dns.TypeA)
	if len(m.Answer) != 2 || m.Answer[1].(*dns.A).A.String() != "198.51.100.1" || stubCount.Load() != 1 || upCount.Load() != 0 {
		t.Fatalf("stub zone not used: %v", m.Answer)
	}
	if _, ok := m.Answer[0].(*dns.TXT); !ok {
		t.Fatalf("query to a stub server must carry the loop-guard option")
	}
	// A query carrying the option is dropped, not answered.
	req := new(dns.Msg)
	req.SetQuestion("abc.acme.local.", dns.TypeA)
	req.SetEdns0(1232, false)
	req.IsEdns0().Option = append(req.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: stubLoopOption, Data: []byte{1}})
	if got := ask(t, h, req, "udp"); got != nil {
		t.Fatalf("looped query answered: %v", got)
	}
	// Removing the stub record takes effect with the next index change.
	ix.Delete(msg.Path("ns1.acme.local.stub.dns.skydns.test.", "skydns"))
	query(t, h, "abc.acme.local.", dns.TypeA)
	if upCount.Load() != 1 {
		t.Fatalf("after removal the zone should go to the normal nameservers")
	}
}

// The response cache keys on everything the upstream's reply depends on:
// a reply to RD=0 (no recursion: empty) never answers an RD=1 query, one
// with an OPT record never answers a query without EDNS0, and a query with
// EDNS0 options (a cookie) is never cached.
func TestForwardCacheKeepsRepliesApart(t *testing.T) {
	up, count := startUpstreamFunc(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.RecursionDesired {
			m.Answer = []dns.RR{newA(r.Question[0].Name, 5, net.ParseIP("192.0.2.44"))}
		}
		if opt := r.IsEdns0(); opt != nil {
			m.SetEdns0(opt.UDPSize(), false)
		}
		return m
	})
	cfg := newTestConfig()
	cfg.Nameservers, cfg.RCache = []string{up}, 10
	h := newTestHandler(t, cfg, loadIndex(t, testRecords))
	const name = "www.example.org."
	noRD := question(name, dns.TypeA, 1)
	noRD.RecursionDesired = false
	if m := ask(t, h, noRD, "udp"); len(m.Answer) != 0 {
		t.Fatalf("RD=0: %v", m.Answer)
	}
	if m := ask(t, h, question(name, dns.TypeA, 2), "udp"); len(m.Answer) != 1 {
		t.Fatalf("RD=1 after RD=0 got the cached empty reply: %v", m)
	}
	if m := ask(t, h, question(name, dns.TypeA, 3).SetEdns0(1232, false), "udp"); m.IsEdns0() == nil {
		t.Fatalf("EDNS0 query: reply without OPT: %v", m)
	}
	if m := ask(t, h, question(name, dns.TypeA, 4), "udp"); m.IsEdns0() != nil || len(m.Answer) != 1 {
		t.Fatalf("a query without EDNS0 got another client's OPT record: %v", m)
	}
	if got := count.Load(); got != 3 {
		t.Fatalf("upstream saw %d queries, want 3 (the last one cached)", got)
	}
	for id := range uint16(2) {
		ask(t, h, withCookie(question(name, dns.TypeA, 10+id)), "udp")
	}
	if got := count.Load(); got != 5 {
		t.Fatalf("upstream saw %d queries, want 5: a query with a cookie is never cached", got)
	}
}

// What goes upstream carries an id of skydns's own and at most a 1232-byte
// EDNS0 buffer; a reply to another question is not passed on.
func TestForwardedQueriesAreSkydnsOwn(t *testing.T) {
	var seen atomic.Pointer[dns.Msg]
	honest, _ := startUpstreamFunc(t, func(r *dns.Msg) *dns.Msg {
		seen.Store(r.Copy())
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{newA(r.Question[0].Name, 5, net.ParseIP("192.0.2.45"))}
		return m
	})
	liar, lies := startUpstreamFunc(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Question = []dns.Question{{Name: "evil.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET}}
		m.Answer = []dns.RR{newA("evil.example.", 5, net.ParseIP("203.0.113.66"))}
		return m
	})
	cfg := newTestConfig()
	cfg.Nameservers, cfg.NSRotate = []string{honest}, false
	h := newTestHandler(t, cfg, loadIndex(t, testRecords))
	req := question("www.example.org.", dns.TypeA, 4242).SetEdns0(65535, false)
	m := ask(t, h, req, "udp")
	if len(m.Answer) != 1 || m.Id != 4242 {
		t.Fatalf("reply %v", m)
	}
	up := seen.Load()
	if up.Id == 4242 || up.IsEdns0() == nil || up.IsEdns0().UDPSize() != 1232 {
		t.Fatalf("upstream saw id %d and EDNS0 %v: want an id of skydns's own and a 1232-byte buffer", up.Id, up.IsEdns0())
	}

	cfg.Nameservers = []string{liar}
	h = newTestHandler(t, cfg, loadIndex(t, testRecords))
	if m := ask(t, h, question("www.example.org.", dns.TypeA, 7), "udp"); m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 || lies.Load() == 0 {
		t.Fatalf("a reply to another question was passed on: %v", m)
	}
}

// Upstream queries in flight are bounded (--max-forwards): past the bound
// a query is SERVFAIL at once, counted, and nothing more is sent; a
// finished exchange frees its slot.
func TestForwardsInFlightAreBounded(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 8)
	up, count := startUpstreamFunc(t, func(r *dns.Msg) *dns.Msg {
		arrived <- struct{}{}
		<-release // Held like an upstream that does not answer, until the test lets go.
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{newA(r.Question[0].Name, 5, net.ParseIP("192.0.2.46"))}
		return m
	})
	cfg := newTestConfig()
	cfg.Nameservers, cfg.MaxForwards, cfg.ReadTimeout = []string{up}, 2, time.Minute
	h := newTestHandler(t, cfg, loadIndex(t, testRecords))
	held := make(chan []byte, 2)
	for i := range 2 {
		go func() { // No t.Fatal off the test's goroutine: the bytes go back to it.
			w := &packingWriter{}
			h.ServeDNS(w, question(fmt.Sprintf("held%d.example.org.", i), dns.TypeA, uint16(i)))
			held <- w.buf
		}()
	}
	<-arrived
	<-arrived
	m := ask(t, h, question("third.example.org.", dns.TypeA, 3), "udp")
	busy := testutilCounter(h.metrics.forwards.WithLabelValues("recursive", "busy"))
	if m.Rcode != dns.RcodeServerFailure || busy != 1 || count.Load() != 2 {
		t.Fatalf("past the bound: %s, busy %v, upstream saw %d", dns.RcodeToString[m.Rcode], busy, count.Load())
	}
	close(release)
	for range 2 {
		if m := unpack(t, <-held); len(m.Answer) != 1 {
			t.Fatalf("a held query: %v", m)
		}
	}
	if m := ask(t, h, question("fourth.example.org.", dns.TypeA, 4), "udp"); len(m.Answer) != 1 {
		t.Fatalf("after the slots were freed: %v", m)
	}
}

// A reply from upstream is fitted to each client like a local one: the
// upstream's OPT record (it answered skydns's query) is replaced by one for
// the client, or dropped when the client sent none; UDP replies are cut at
// the client's buffer and --max-udp-size with TC set; DO is echoed. From
// the response cache alike.
func TestRelayedRepliesAreFittedToTheClient(t *testing.T) {
	up, _ := startUpstreamFunc(t, func(r *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(r)
		for i := range 120 { // About 2 KB: more than 512 or 1232 bytes hold.
			m.Answer = append(m.Answer, newA(r.Question[0].Name, 5, net.IPv4(192, 0, 2, byte(i))))
		}
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)       // Over UDP, as much as skydns said it takes,
		m.SetEdns0(4096, true) // with an OPT record of its own, asked or not.
		return m
	})
	withEDNS := func(size uint16, do bool) func(*dns.Msg) *dns.Msg {
		return func(m *dns.Msg) *dns.Msg { return m.SetEdns0(size, do) }
	}
	plain := func(m *dns.Msg) *dns.Msg { return m }
	tests := []struct {
		name     string
		edns     func(*dns.Msg) *dns.Msg
		maxBytes int
		wantOPT  bool
		wantDO   bool
	}{
		{"no EDNS", plain, dns.MinMsgSize, false, false},
		{"EDNS 65535", withEDNS(65535, false), 1232, true, false},
		{"EDNS with DO", withEDNS(1232, true), 1232, true, true},
	}
	for _, cacheSize := range []int{0, 100} {
		h := forwardingHandler(t, func(c *Config) { c.Nameservers, c.RCache = []string{up}, cacheSize })
		for _, tc := range tests {
			for range 2 { // The second time from the cache, when there is one.
				w := &packingWriter{}
				h.ServeDNS(w, tc.edns(question(fmt.Sprintf("big%d.example.org.", cacheSize), dns.TypeA, 9)))
				m := unpack(t, w.buf)
				opt := m.IsEdns0()
				whole := len(m.Answer) == 120
				if len(w.buf) > tc.maxBytes || (opt != nil) != tc.wantOPT || (opt != nil && opt.Do() != tc.wantDO) || whole == m.Truncated {
					t.Fatalf("rcache %d, %s: %d bytes (max %d), OPT %v, TC %v, %d answers", cacheSize, tc.name, len(w.buf), tc.maxBytes, opt, m.Truncated, len(m.Answer))
				}
			}
		}
	}
}
