package skydns

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/skydns/msg"
)

// serve runs req through h.ServeDNS and returns the bytes written.
func serve(t *testing.T, h *Handler, req *dns.Msg, tcp bool) []byte {
	t.Helper()
	w := &packingWriter{tcp: tcp}
	h.ServeDNS(w, req)
	if len(w.buf) == 0 {
		t.Fatalf("no reply to %v", req.Question)
	}
	return append([]byte(nil), w.buf...)
}

func unpack(t *testing.T, wire []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(wire); err != nil {
		t.Fatalf("reply does not unpack: %v", err)
	}
	return m
}

// A packed answer must be byte for byte the reply the handler would have
// built, for every qtype and every shape of request the key distinguishes,
// with the id of the request at hand. Under round robin both shuffle the
// answers, each its own way: they must be the same records, and the same
// bytes once the answers are put in one order (canonicalAnswers).
func TestPackedAnswersEqualBuiltReplies(t *testing.T) {
	var names []string
	for name := range testRecords {
		names = append(names, strings.ToLower(msg.Domain(msg.Path(name, "skydns"))))
	}
	names = append(names, "testservice.default.svc.skydns.test.", "hl.default.svc.skydns.test.", "nowhere.skydns.test.",
		"skydns.test.", "_http._tcp.hl.default.svc.skydns.test.", "txt.skydns.test.", "nowhere.0.0.10.in-addr.arpa.")
	qtypes := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeTXT, dns.TypeMX, dns.TypeCNAME,
		dns.TypeNS, dns.TypeSOA, dns.TypeHINFO}
	for _, roundRobin := range []bool{false, true} {
		t.Run(fmt.Sprintf("round-robin=%v", roundRobin), func(t *testing.T) {
			cfg := newTestConfig()
			cfg.RoundRobin = roundRobin
			cached, built := packedAndBuilt(t, cfg, loadIndex(t, testRecords))
			for _, name := range names {
				for _, qtype := range qtypes {
					t.Run(name+"/"+dns.TypeToString[qtype], func(t *testing.T) { checkPackedEqualsBuilt(t, cached, built, name, qtype) })
				}
			}
			if cached.PackedEntries() < len(names) {
				t.Fatalf("%d replies kept: the cache was not exercised", cached.PackedEntries())
			}
		})
	}
}

// packedAndBuilt are two handlers of cfg over ix: with the packed answers,
// and with none.
func packedAndBuilt(t testing.TB, cfg *Config, ix *Index) (cached, built *Handler) {
	off := *cfg
	off.AnswerCache = 0
	return newTestHandler(t, cfg, ix), newTestHandler(t, &off, ix)
}

// checkPackedEqualsBuilt asks for name and qtype in every request shape,
// built and then twice from cached: the first may keep the reply, the
// second be served from it, under another id.
func checkPackedEqualsBuilt(t *testing.T, cached, built *Handler, name string, qtype uint16) {
	t.Helper()
	for i, shape := range requestShapes {
		id := uint16(100 * i)
		want := canonicalAnswers(serve(t, built, shape.request(name, qtype, id), shape.tcp))
		for n := range uint16(2) {
			got := serve(t, cached, shape.request(name, qtype, id+n+1), shape.tcp)
			if unpack(t, got).Id != id+n+1 {
				t.Fatalf("%s: reply id %d, want %d", shape.name, unpack(t, got).Id, id+n+1)
			}
			want[0], want[1] = got[0], got[1]
			if got = canonicalAnswers(got); !bytes.Equal(got, want) {
				t.Fatalf("%s: served\n%v\nbuilt\n%v", shape.name, unpack(t, got), unpack(t, want))
			}
		}
	}
}

// canonicalAnswers is wire with its answer records sorted by their bytes,
// when they all have one size: the order round robin draws aside, the
// same reply.
func canonicalAnswers(wire []byte) []byte {
	span, ok := answerSpan(wire)
	if !ok || span.n < 2 {
		return wire
	}
	rrs := make([][]byte, span.n)
	for i := range rrs {
		rrs[i] = wire[span.start+i*span.size:][:span.size]
	}
	slices.SortFunc(rrs, bytes.Compare)
	out := slices.Clone(wire[:span.start])
	for _, rr := range rrs {
		out = append(out, rr...)
	}
	return append(out, wire[span.start+span.n*span.size:]...)
}

var requestShapes = []struct {
	name    string
	tcp     bool
	request func(name string, qtype, id uint16) *dns.Msg
}{
	{"plain", false, func(name string, qtype, id uint16) *dns.Msg { return question(name, qtype, id) }},
	{"tcp", true, func(name string, qtype, id uint16) *dns.Msg { return question(name, qtype, id) }},
	{"no-rd", false, func(name string, qtype, id uint16) *dns.Msg {
		m := question(name, qtype, id)
		m.RecursionDesired = false
		return m
	}},
	{"cd", false, func(name string, qtype, id uint16) *dns.Msg {
		m := question(name, qtype, id)
		m.CheckingDisabled = true
		return m
	}},
	{"edns-1232", false, func(name string, qtype, id uint16) *dns.Msg { return question(name, qtype, id).SetEdns0(1232, false) }},
	{"edns-8192-do", false, func(name string, qtype, id uint16) *dns.Msg { return question(name, qtype, id).SetEdns0(8192, true) }},
	{"edns-100", true, func(name string, qtype, id uint16) *dns.Msg { return question(name, qtype, id).SetEdns0(100, false) }},
	{"cookie", false, func(name string, qtype, id uint16) *dns.Msg { return withCookie(question(name, qtype, id)) }},
	{"cookie-tcp", true, func(name string, qtype, id uint16) *dns.Msg { return withCookie(question(name, qtype, id)) }},
}

func question(name string, qtype, id uint16) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.Id = id
	return m
}

// Every change to the records retires the packed answers built before it.
func TestPackedAnswersFollowTheIndex(t *testing.T) {
	ix := loadIndex(t, map[string]string{"a1.web.default.svc.skydns.test.": `{"host":"10.9.0.1","ttl":30}`})
	h := newTestHandler(t, newTestConfig(), ix)
	key := msg.Path("a1.web.default.svc.skydns.test.", "skydns")
	ask := func() *dns.Msg {
		m := unpack(t, serve(t, h, question("web.default.svc.skydns.test.", dns.TypeA, 7), false))
		serve(t, h, question("web.default.svc.skydns.test.", dns.TypeA, 8), false) // Served packed, if kept.
		return m
	}
	steps := []struct {
		name   string
		change func()
		rcode  int
		answer string
	}{
		{"first", func() {}, dns.RcodeSuccess, "10.9.0.1"},
		{"put", func() { ix.Put(msg.Service{Key: key, Host: "10.9.0.2", TTL: 30}) }, dns.RcodeSuccess, "10.9.0.2"},
		{"delete", func() { ix.Delete(key) }, dns.RcodeNameError, ""},
		{"replace", func() { ix.Replace([]msg.Service{{Key: key, Host: "10.9.0.3", TTL: 30}}) }, dns.RcodeSuccess, "10.9.0.3"},
	}
	for _, step := range steps {
		step.change()
		for range 3 {
			m := ask()
			if m.Rcode != step.rcode {
				t.Fatalf("%s: rcode %s, want %s", step.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[step.rcode])
			}
			if step.answer != "" && (len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != step.answer) {
				t.Fatalf("%s: answer %v, want %s", step.name, m.Answer, step.answer)
			}
		}
	}
}

// Replies that hold data not from the index, or that rest on upstream's
// silence or a wildcard's walk, are built every time and never kept; the
// rest are kept, of every qtype, negative ones included.
func TestPackedAnswersKeepOnlyExactReplies(t *testing.T) {
	rr := newTestConfig()
	rr.RoundRobin = true
	up, _ := startUpstream(t, "192.0.2.1")
	forwarding := newTestConfig()
	forwarding.Nameservers = []string{up}
	records := map[string]string{
		// One address and one name that upstream cannot resolve: the
		// answer is the address alone today, and more once upstream can.
		"a.mixedhost.skydns.test.": `{"host":"10.0.0.50"}`,
		"b.mixedhost.skydns.test.": `{"host":"nxdomain.example.com"}`,
	}
	for name, value := range testRecords {
		records[name] = value
	}
	tests := []struct {
		name  string
		cfg   *Config
		req   *dns.Msg
		check func(*dns.Msg) error
		kept  bool
	}{
		{"address", newTestConfig(), question("testservice.default.svc.skydns.test.", dns.TypeA, 1), answers(1), true},
		{"nxdomain", newTestConfig(), question("nothing.skydns.test.", dns.TypeA, 1), rcode(dns.RcodeNameError), true},
		{"nodata", newTestConfig(), question("svc6.default.svc.skydns.test.", dns.TypeA, 1), answers(0), true},
		{"two addresses in order", newTestConfig(), question("hl.default.svc.skydns.test.", dns.TypeA, 1), answers(2), true},
		{"mixed case keeps the asker's spelling", newTestConfig(), question("TestService.Default.SVC.skydns.test.", dns.TypeA, 1),
			ownerIs("TestService.Default.SVC.skydns.test."), false},
		{"round robin, shuffled for each query", rr, question("hl.default.svc.skydns.test.", dns.TypeA, 1), answers(2), true},
		{"cname to upstream data", newTestConfig(), question("external.skydns.test.", dns.TypeA, 1), answers(2), false},
		{"address beside a name upstream may resolve later", newTestConfig(), question("mixedhost.skydns.test.", dns.TypeA, 1), answers(1), false},
		{"in-zone cname", newTestConfig(), question("1.backend.in.skydns.test.", dns.TypeA, 1), answers(3), true},
		{"in-zone cname, round robin", rr, question("1.backend.in.skydns.test.", dns.TypeA, 1), answers(3), true},
		{"wildcard", newTestConfig(), question("*.ipaddr.skydns.test.", dns.TypeA, 1), answers(2), false},
		{"srv to its own key", newTestConfig(), question("testservice.default.svc.skydns.test.", dns.TypeSRV, 1), answers(1), true},
		{"srv to an in-zone name", newTestConfig(), question("_http1._tcp.testservice.default.svc.skydns.test.", dns.TypeSRV, 1), answers(1), true},
		{"headless srv", rr, question("_http._tcp.hl.default.svc.skydns.test.", dns.TypeSRV, 1), answers(2), true},
		{"srv to an outside name", newTestConfig(), question("y.bar.skydns.test.", dns.TypeSRV, 1), answers(1), false},
		{"mx to an outside name", newTestConfig(), question("b.mail.skydns.test.", dns.TypeMX, 1), answers(1), false},
		{"ptr", newTestConfig(), question("1.0.0.10.in-addr.arpa.", dns.TypePTR, 1), answers(1), true},
		{"txt", newTestConfig(), question("txt.skydns.test.", dns.TypeTXT, 1), answers(2), true},
		{"ns", newTestConfig(), question("skydns.test.", dns.TypeNS, 1), answers(2), true},
		{"soa", newTestConfig(), question("skydns.test.", dns.TypeSOA, 1), answers(1), true},
		{"nodata of another type", newTestConfig(), question("testservice.default.svc.skydns.test.", dns.TypeHINFO, 1), answers(0), true},
		{"nxdomain of another type", newTestConfig(), question("nothing.skydns.test.", dns.TypeMX, 1), rcode(dns.RcodeNameError), true},
		{"a cookie", newTestConfig(), withCookie(question("testservice.default.svc.skydns.test.", dns.TypeA, 1)), answers(1), true},
		{"the stub loop marker", newTestConfig(), withStubLoopMarker(question("testservice.default.svc.skydns.test.", dns.TypeA, 1)), answers(1), false},
		{"chaos class", newTestConfig(), chaos(question("version.bind.", dns.TypeA, 1)), answers(0), false},
		{"forwarded", forwarding, question("www.example.com.", dns.TypeA, 1), answers(1), false},
		{"reverse name forwarded", forwarding, question("2.0.0.10.in-addr.arpa.", dns.TypePTR, 1), rcode(dns.RcodeSuccess), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler(t, tc.cfg, loadIndex(t, records))
			for range 3 {
				if err := tc.check(unpack(t, serve(t, h, tc.req, false))); err != nil {
					t.Fatal(err)
				}
			}
			if kept := h.PackedEntries() == 1; kept != tc.kept || h.PackedEntries() > 1 {
				t.Fatalf("%d replies kept, want kept=%v", h.PackedEntries(), tc.kept)
			}
		})
	}
}

// A negative reply carries the SOA serial, the hour it was made: a packed
// one is not served past that hour.
func TestPackedNegativeAnswersFollowTheSerial(t *testing.T) {
	now := time.Unix(1700000000, 0)
	h := newTestHandler(t, newTestConfig(), loadIndex(t, testRecords), func(d *Deps) { d.Clock = func() time.Time { return now } })
	serialOf := func() uint32 {
		m := unpack(t, serve(t, h, question("nothing.skydns.test.", dns.TypeA, 1), false))
		if len(m.Ns) != 1 {
			t.Fatalf("NXDOMAIN without its SOA: %v", m)
		}
		return m.Ns[0].(*dns.SOA).Serial
	}
	first := serialOf()
	if again := serialOf(); again != first {
		t.Fatalf("serial changed within the hour: %d, then %d", first, again)
	}
	now = now.Add(time.Hour)
	if next := serialOf(); next != first+3600 {
		t.Fatalf("serial after an hour %d, want %d", next, first+3600)
	}
}

func rcode(want int) func(*dns.Msg) error {
	return func(m *dns.Msg) error {
		if m.Rcode != want {
			return fmt.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[want])
		}
		return nil
	}
}

func answers(n int) func(*dns.Msg) error {
	return func(m *dns.Msg) error {
		if len(m.Answer) != n {
			return fmt.Errorf("%d answers, want %d: %v", len(m.Answer), n, m)
		}
		return nil
	}
}

func ownerIs(name string) func(*dns.Msg) error {
	return func(m *dns.Msg) error {
		if len(m.Answer) != 1 || m.Answer[0].Header().Name != name {
			return fmt.Errorf("answer %v, want one owned by %s", m.Answer, name)
		}
		return nil
	}
}

func withCookie(m *dns.Msg) *dns.Msg {
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
	return m
}

func withStubLoopMarker(m *dns.Msg) *dns.Msg {
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_LOCAL{Code: stubLoopOption, Data: []byte{1}})
	return m
}

func chaos(m *dns.Msg) *dns.Msg {
	m.Question[0].Qclass = dns.ClassCHAOS
	return m
}

// A full cache makes room; it never grows past its limit or answers wrong.
func TestPackedAnswersStayWithinLimit(t *testing.T) {
	records := map[string]string{}
	for i := range 20 {
		records[fmt.Sprintf("x.s%d.skydns.test.", i)] = fmt.Sprintf(`{"host":"10.8.0.%d"}`, i)
	}
	cfg := newTestConfig()
	cfg.AnswerCache = 5
	h := newTestHandler(t, cfg, loadIndex(t, records))
	for round := range 3 {
		for i := range 20 {
			m := unpack(t, serve(t, h, question(fmt.Sprintf("s%d.skydns.test.", i), dns.TypeA, uint16(i)), false))
			if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != fmt.Sprintf("10.8.0.%d", i) {
				t.Fatalf("round %d, s%d: %v", round, i, m.Answer)
			}
			if n := h.PackedEntries(); n > 5 {
				t.Fatalf("%d replies kept, limit 5", n)
			}
		}
	}
}

// A full cache lets a new name in at its second miss, not its first: a
// run of names each asked for once leaves the kept ones be, and a name
// asked for over and over gets in, as does a new working set.
func TestPackedAnswersAdmission(t *testing.T) {
	records := map[string]string{}
	for i := range 2000 {
		records[fmt.Sprintf("x.s%d.skydns.test.", i)] = fmt.Sprintf(`{"host":"10.8.%d.%d"}`, i>>8, i&255)
	}
	ix := loadIndex(t, records)
	cfg := newTestConfig()
	cfg.AnswerCache = 10
	h := newTestHandler(t, cfg, ix)
	name := func(i int) string { return fmt.Sprintf("s%d.skydns.test.", i) }
	ask := func(i int) *dns.Msg { return unpack(t, serve(t, h, question(name(i), dns.TypeA, uint16(i)), false)) }
	kept := func() map[string]bool {
		out := map[string]bool{}
		for k := range h.caches.packed.shards[0].entries {
			out[k.name] = true
		}
		return out
	}
	for i := range 10 {
		ask(i) // Fills the cache.
	}
	// Each once: turned away, but for the doorkeeper's false positives
	// (some 2% here, 5% at most).
	admitted := 0
	for i := 10; i < 1000; i++ {
		ask(i)
		if kept()[name(i)] {
			admitted++
		}
	}
	if admitted > 990/10 {
		t.Fatalf("%d of 990 names asked for once taken in by the full cache; want few", admitted)
	}
	if n := h.PackedEntries(); n != 10 {
		t.Fatalf("%d replies kept; want the limit, 10", n)
	}
	ask(1500)
	ask(1500)
	if !kept()[name(1500)] {
		t.Fatalf("%s, asked for twice in a row, is not kept", name(1500))
	}
	// A new working set: ten names asked for over and over. Each gets in
	// at its second miss, pushing out a random entry, at times one of
	// them, which gets in again the next pass: the last old name goes
	// when such a pass picks it, one time in ten.
	for range 200 {
		for i := 1000; i < 1010; i++ {
			ask(i)
		}
	}
	for i := 1000; i < 1010; i++ {
		if !kept()[name(i)] {
			t.Errorf("%s, asked for 200 times, is not kept: %v", name(i), kept())
		}
	}
	// A held name whose record changes is replaced in the full cache.
	ix.Put(msg.Service{Key: msg.Path("x.s1000.skydns.test.", "skydns"), Host: "10.9.9.9"})
	for range 2 {
		if m := ask(1000); len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "10.9.9.9" {
			t.Fatalf("after the change: %v", m.Answer)
		}
	}
	if !kept()[name(1000)] {
		t.Fatalf("%s, changed, is no longer kept", name(1000))
	}
}

// seen reports whether both bits of h are set: admit without noting.
func (d *doorkeeper) seen(h uint64) bool {
	i, j := d.positions(h)
	return d.has(i) && d.has(j)
}

// serviceKey is the A key of the i-th of many service names.
func serviceKey(i int) answerKey {
	return answerKey{name: fmt.Sprintf("svc-%d.ns.svc.cluster.local.", i), qtype: dns.TypeA}
}

// The doorkeeper of a shard holding as many keys as it remembers turns
// away about 95% of the keys it has not seen, whatever the shard's size:
// its bits are not the ones that chose the shard.
func TestDoorkeeperFalsePositives(t *testing.T) {
	for _, limit := range []int{10, 1024, 32768} {
		c := newPackedAnswers(limit * packedShards)
		sh := &c.shards[0]
		keys := func(yield func(answerKey) bool) {
			for i := 0; ; i++ {
				key := serviceKey(i)
				if c.shardOf(c.nameHash(key)) == sh && !yield(key) {
					return
				}
			}
		}
		filled, probed, positives := 0, 0, 0
	probe:
		for key := range keys {
			switch {
			case filled < sh.limit-1:
				if !sh.door.admit(keyHash(key, c.nameHash(key)), sh.limit) { // A false positive is not remembered.
					filled++
				}
			case probed < 5000:
				if sh.door.seen(keyHash(key, c.nameHash(key))) {
					positives++
				}
				probed++
			default:
				break probe
			}
		}
		if rate := float64(positives) / float64(probed); rate > 0.10 {
			t.Errorf("limit %d: %.1f%% of unseen keys pass the doorkeeper; want about 5%%", limit, 100*rate)
		}
	}
}

// The name filter never turns away a name the shard holds, through
// evictions and the filter's remaking, and passes few it does not: a
// full shard over and over replaced by new names (each put twice, which
// the doorkeeper lets in) still has every held name's bit set, and about
// one name in nine never put finds its bit set.
func TestNameFilterHoldsEveryEntry(t *testing.T) {
	const limit = 512 // One shard.
	c := newPackedAnswers(limit)
	sh := &c.shards[0]
	entry := packedAnswer{wire: []byte{0}}
	for i := range 10 * limit {
		key := serviceKey(i)
		c.put(key, entry)
		c.put(key, entry)
		if i%limit == limit-1 || i == 10*limit-1 {
			for held := range sh.entries {
				if !c.mayHold(c.nameHash(held)) {
					t.Fatalf("after %d names: %s is held but its bit is clear", i+1, held.name)
				}
			}
		}
	}
	if len(sh.entries) != limit {
		t.Fatalf("%d entries held, want the shard full (%d)", len(sh.entries), limit)
	}
	positives := 0
	const probes = 5000
	for i := range probes {
		if c.mayHold(c.nameHash(serviceKey(-1 - i))) {
			positives++
		}
	}
	// A full shard sets up to limit of 8*limit bits: 11.8% when all
	// differ; evicted names since the last remaking set more.
	if rate := float64(positives) / probes; rate > 0.25 {
		t.Errorf("%.1f%% of names never put pass the filter; want about 12%%-22%%", 100*rate)
	}
}

// A reply over 512 bytes depends on the transport and the client's buffer
// (TC over UDP, everything over TCP), which the key leaves out: such
// replies are never kept.
func TestPackedAnswersLeaveLargeRepliesAlone(t *testing.T) {
	records := map[string]string{}
	for i := 0; i < 60; i++ {
		records[fmt.Sprintf("%d.big.skydns.test.", i)] = fmt.Sprintf(`{"host":"10.1.0.%d"}`, i)
	}
	h := newTestHandler(t, newTestConfig(), loadIndex(t, records))
	for _, step := range []struct {
		tcp     bool
		edns    uint16
		tc      bool
		answers int
	}{
		{tcp: false, tc: true},
		{tcp: true, answers: 60},
		{tcp: false, edns: 4096, answers: 60},
		{tcp: true, edns: 4096, answers: 60},
		{tcp: false, tc: true},
	} {
		req := question("big.skydns.test.", dns.TypeA, 1)
		if step.edns > 0 {
			req.SetEdns0(step.edns, false)
		}
		m := unpack(t, serve(t, h, req, step.tcp))
		if m.Truncated != step.tc || (!step.tc && len(m.Answer) != step.answers) {
			t.Fatalf("tcp=%v edns=%d: TC=%v with %d answers, want TC=%v with %d", step.tcp, step.edns, m.Truncated, len(m.Answer), step.tc, step.answers)
		}
	}
	if n := h.PackedEntries(); n != 0 {
		t.Fatalf("%d replies kept, want none", n)
	}
}

// A packed reply is counted like a built one: by its own rcode, with the
// lookups of local names split into hits and misses. A forwarded name is
// no lookup.
func TestPackedAnswersAreCounted(t *testing.T) {
	h := newTestHandler(t, newTestConfig(), loadIndex(t, testRecords))
	for range 3 {
		serve(t, h, question("nothing.skydns.test.", dns.TypeA, 1), false)
		serve(t, h, question("testservice.default.svc.skydns.test.", dns.TypeA, 1), false)
		serve(t, h, question("testservice.default.svc.skydns.test.", dns.TypeSRV, 1), false)
		serve(t, h, question("www.example.com.", dns.TypeA, 1), false)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"NXDOMAIN responses", counted(h.metrics.responses, "rcode", "NXDOMAIN"), 3},
		{"NOERROR responses", counted(h.metrics.responses, "rcode", "NOERROR"), 9},
		{"hits", counted(h.metrics.lookups, "result", "hit"), 6},
		{"misses", counted(h.metrics.lookups, "result", "miss"), 3},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// A packed reply lasts until a change lands at or below its name (for a
// name that does not exist: below its deepest existing ancestor), and
// outlives changes anywhere else.
func TestPackedAnswersOutliveChangesElsewhere(t *testing.T) {
	ix := loadIndex(t, map[string]string{
		"a1.web.default.svc.skydns.test.": `{"host":"10.9.0.1"}`,
		"a2.db.default.svc.skydns.test.":  `{"host":"10.9.0.2"}`,
	})
	h := newTestHandler(t, newTestConfig(), ix)
	put := func(name, host string) func() { return putHost(ix, name, host) }
	steps := []struct {
		name   string
		change func()
		qname  string
		hit    bool
		rcode  int
	}{
		{"first ask", func() {}, "web.default.svc.skydns.test.", false, dns.RcodeSuccess},
		{"ask again", func() {}, "web.default.svc.skydns.test.", true, dns.RcodeSuccess},
		{"another service changes", put("a3.db.default.svc.skydns.test.", "10.9.0.3"), "web.default.svc.skydns.test.", true, dns.RcodeSuccess},
		{"another namespace appears", put("a4.x.other.svc.skydns.test.", "10.9.0.4"), "web.default.svc.skydns.test.", true, dns.RcodeSuccess},
		{"a hidden record below the name changes", put("a1._http._tcp.web.default.svc.skydns.test.", "10.9.0.1"), "web.default.svc.skydns.test.", false, dns.RcodeSuccess},
		{"missing name first asked", func() {}, "new.default.svc.skydns.test.", false, dns.RcodeNameError},
		{"missing name asked again", func() {}, "new.default.svc.skydns.test.", true, dns.RcodeNameError},
		{"a name beside it appears", put("a5.newer.other.svc.skydns.test.", "10.9.0.5"), "new.default.svc.skydns.test.", true, dns.RcodeNameError},
		{"the missing name appears", put("a6.new.default.svc.skydns.test.", "10.9.0.6"), "new.default.svc.skydns.test.", false, dns.RcodeSuccess},
		{"the whole tree is listed again, empty", func() { ix.Replace(nil) }, "new.default.svc.skydns.test.", false, dns.RcodeNameError},
		{"the first record after it", put("a7.new.default.svc.skydns.test.", "10.9.0.7"), "new.default.svc.skydns.test.", false, dns.RcodeSuccess},
	}
	for _, step := range steps {
		step.change()
		hits := counted(h.metrics.lookups, "result", "hit")
		m := unpack(t, serve(t, h, question(step.qname, dns.TypeA, 1), false))
		if hit := counted(h.metrics.lookups, "result", "hit") > hits; hit != step.hit {
			t.Errorf("%s: served packed %v, want %v", step.name, hit, step.hit)
		}
		if m.Rcode != step.rcode {
			t.Errorf("%s: rcode %s, want %s", step.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[step.rcode])
		}
	}
}

// putHost is a change that puts a record of host at name.
func putHost(ix *Index, name, host string) func() {
	return func() { ix.Put(msg.Service{Key: msg.Path(name, "skydns"), Host: host}) }
}

// Queries racing a writer: once a Put has returned, every query sees it,
// however many replies were being built and kept meanwhile.
func TestPackedAnswersUnderConcurrentChanges(t *testing.T) {
	name := "web.default.svc.skydns.test."
	key := msg.Path("a1."+name, "skydns")
	ix := loadIndex(t, map[string]string{"a1." + name: `{"host":"10.7.0.0"}`})
	h := newTestHandler(t, newTestConfig(), ix)
	stop := make(chan struct{})
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			w := &packingWriter{}
			for {
				select {
				case <-stop:
					return
				default:
					h.ServeDNS(w, question(name, dns.TypeA, 1))
				}
			}
		}()
	}
	defer func() {
		close(stop)
		for range 4 {
			<-done
		}
	}()
	for i := 1; i <= 300; i++ {
		want := fmt.Sprintf("10.7.%d.%d", i/256, i%256)
		ix.Put(msg.Service{Key: key, Host: want})
		m := unpack(t, serve(t, h, question(name, dns.TypeA, 2), false))
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != want {
			t.Fatalf("after put %d: %v, want %s", i, m.Answer, want)
		}
	}
}

func answerKeyAdmits(r *request) bool { _, ok := answerKeyOf(r); return ok }

// FuzzPackedEqualsBuilt feeds arbitrary requests to handlers with packed
// answers and to ones without, plain and with round robin: whenever the
// cache may answer, asking twice (a miss, then perhaps a hit) must give
// the built reply's exact bytes, with the answers in one order under
// round robin (canonicalAnswers).
func FuzzPackedEqualsBuilt(f *testing.F) {
	for _, seed := range packedSeeds {
		for _, shape := range requestShapes {
			if wire, err := shape.request(seed.name, seed.qtype, 7).Pack(); err == nil {
				f.Add(wire)
			}
		}
	}
	ix := loadIndex(f, testRecords)
	// RSA signatures are a function of the data, as ECDSA's are not: the
	// signed pair, with a cache each, sign alike. Not under round robin:
	// with signatures among them the answers differ in size, and
	// canonicalAnswers cannot put them in one order.
	key := writeTestKey(f, f.TempDir(), "skydns.test.", dns.RSASHA256, 257)
	var pairs [][2]*Handler
	for _, variant := range []struct{ roundRobin, signed bool }{{false, false}, {true, false}, {false, true}} {
		cfg := newTestConfig()
		cfg.NoRec = true // Nothing leaves the process.
		cfg.RoundRobin = variant.roundRobin
		if variant.signed {
			cfg.DNSSEC = key
			if err := cfg.Finish(); err != nil {
				f.Fatal(err)
			}
		}
		cached, built := packedAndBuilt(f, cfg, ix)
		pairs = append(pairs, [2]*Handler{cached, built})
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		req := new(dns.Msg)
		if req.Unpack(wire) != nil || len(req.Question) != 1 {
			return
		}
		var r request
		r.reset(req, false, testClock())
		if !answerKeyAdmits(&r) {
			return
		}
		for _, pair := range pairs {
			want := canonicalAnswers(serve(t, pair[1], req.Copy(), false))
			for range 2 {
				if got := canonicalAnswers(serve(t, pair[0], req.Copy(), false)); !bytes.Equal(got, want) {
					t.Fatalf("request %v\nserved\n%v\nbuilt\n%v", req, unpack(t, got), unpack(t, want))
				}
			}
		}
	})
}

// packedSeeds are the questions FuzzPackedEqualsBuilt starts from, one of
// each kind of reply that may be kept or is built every time.
var packedSeeds = []struct {
	name  string
	qtype uint16
}{
	{"testservice.default.svc.skydns.test.", dns.TypeA}, {"nothing.skydns.test.", dns.TypeA},
	{"1.backend.in.skydns.test.", dns.TypeA}, {"*.ipaddr.skydns.test.", dns.TypeA},
	{"hl.default.svc.skydns.test.", dns.TypeA}, {"ipaddr.skydns.test.", dns.TypeAAAA},
	{"_http1._tcp.testservice.default.svc.skydns.test.", dns.TypeSRV}, {"_http._tcp.hl.default.svc.skydns.test.", dns.TypeSRV},
	{"region1.skydns.test.", dns.TypeSRV}, {"1.0.0.10.in-addr.arpa.", dns.TypePTR}, {"2.0.0.10.in-addr.arpa.", dns.TypePTR},
	{"txt.skydns.test.", dns.TypeTXT}, {"long.skydns.test.", dns.TypeTXT}, {"b.mail.skydns.test.", dns.TypeMX},
	{"external.skydns.test.", dns.TypeCNAME}, {"skydns.test.", dns.TypeNS}, {"skydns.test.", dns.TypeSOA},
	{"testservice.default.svc.skydns.test.", dns.TypeHINFO}, {"nothing.skydns.test.", dns.TypeMX},
	{"local.dns.skydns.test.", dns.TypeA}, {"dedup.skydns.test.", dns.TypeA},
}

// Under round robin a packed reply's answers are shuffled for each query,
// as a built one's are: every address comes first now and then, and the
// records are always the same ones.
func TestPackedAnswersShuffleEachCopy(t *testing.T) {
	records := numbered(4, "e%d.hl.skydns.test.", address)
	cfg := newTestConfig()
	cfg.RoundRobin = true
	h := newTestHandler(t, cfg, loadIndex(t, records))
	want := canonicalAnswers(serve(t, h, question("hl.skydns.test.", dns.TypeA, 1), false))
	first := map[string]bool{}
	for range 200 {
		got := serve(t, h, question("hl.skydns.test.", dns.TypeA, 1), false)
		if !bytes.Equal(canonicalAnswers(got), want) {
			t.Fatalf("served\n%v\nfirst built\n%v", unpack(t, got), unpack(t, want))
		}
		first[unpack(t, got).Answer[0].(*dns.A).A.String()] = true
	}
	if len(first) != 4 || h.PackedEntries() != 1 {
		t.Fatalf("first addresses %v over 200 queries, %d replies kept: want all 4 from one", first, h.PackedEntries())
	}
}

// A reply read from several names (an SRV record and its target, a CNAME
// and its target) is retired by a change to any of them.
func TestPackedAnswersFollowEveryNameRead(t *testing.T) {
	ix := loadIndex(t, map[string]string{
		"a1.web.default.svc.skydns.test.":            `{"host":"10.9.0.1"}`,
		"a1._http._tcp.web.default.svc.skydns.test.": `{"host":"web.default.svc.skydns.test.","port":80}`,
		"alias.skydns.test.":                         `{"host":"web.default.svc.skydns.test."}`,
	})
	h := newTestHandler(t, newTestConfig(), ix)
	put := func(name, host string) func() { return putHost(ix, name, host) }
	steps := []struct {
		name   string
		change func()
		want   string // The address in the reply, as text.
	}{
		{"first", func() {}, "10.9.0.1"},
		{"the target moves", put("a1.web.default.svc.skydns.test.", "10.9.0.2"), "10.9.0.2"},
		{"another service changes", put("a1.db.default.svc.skydns.test.", "10.9.0.3"), "10.9.0.2"},
	}
	for _, step := range steps {
		step.change()
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{"_http._tcp.web.default.svc.skydns.test.", dns.TypeSRV}, {"alias.skydns.test.", dns.TypeA}} {
			for range 2 { // Built (or packed), then packed.
				m := unpack(t, serve(t, h, question(q.name, q.qtype, 1), false))
				if got := fmt.Sprint(append(m.Answer, m.Extra...)); !strings.Contains(got, "\t"+step.want) {
					t.Fatalf("%s: %s %s: %s, want %s", step.name, q.name, dns.TypeToString[q.qtype], got, step.want)
				}
			}
		}
	}
	if h.PackedEntries() != 2 {
		t.Fatalf("%d replies kept, want 2", h.PackedEntries())
	}
}

// With -stubzones a name is local only while no stub zone takes it: a
// reply kept packed goes when one appears, and the name is relayed to the
// stub zone's servers from the next query on.
func TestPackedAnswersGiveWayToANewStubZone(t *testing.T) {
	ix := loadIndex(t, map[string]string{"a.web.skydns.test.": `{"host":"10.9.0.1"}`})
	cfg := newTestConfig()
	cfg.StubZones = true
	h := newTestHandler(t, cfg, ix, func(d *Deps) { d.Exchange = scriptedUpstream{} })
	for range 2 {
		if m := unpack(t, serve(t, h, question("web.skydns.test.", dns.TypeA, 1), false)); !strings.Contains(fmt.Sprint(m.Answer), "10.9.0.1") {
			t.Fatalf("before the stub zone: %v", m.Answer)
		}
	}
	if h.PackedEntries() != 1 {
		t.Fatalf("%d replies kept, want 1", h.PackedEntries())
	}
	putHost(ix, "ns1.web.skydns.test.stub.dns.skydns.test.", "192.0.2.53")()
	// scriptedUpstream, standing in for the stub zone's server, answers 192.0.2.1.
	if m := unpack(t, serve(t, h, question("web.skydns.test.", dns.TypeA, 1), false)); !strings.Contains(fmt.Sprint(m.Answer), "192.0.2.1") {
		t.Fatalf("after the stub zone: %v, want the stub server's answer", m.Answer)
	}
}

// TestNearAnswers checks a UDP reader's own copy of the packed answers
// (nearAnswers) on the shared cache's terms: what it copied is served
// only while the reads it rests on are current and the serial is the
// same, even once the shared cache has let the entry go; a key sharing
// the slot gets its own entry; another handler's cache clears it.
func TestNearAnswers(t *testing.T) {
	const serial = 100
	key := answerKey{name: "a.skydns.test.", qtype: dns.TypeA}
	tests := []struct {
		name   string
		change func(shared *packedAnswers, cell *atomic.Uint64) (*packedAnswers, answerKey, uint32)
		want   bool
	}{
		{"unchanged", func(s *packedAnswers, _ *atomic.Uint64) (*packedAnswers, answerKey, uint32) { return s, key, serial }, true},
		{"let go by the shared cache", func(s *packedAnswers, _ *atomic.Uint64) (*packedAnswers, answerKey, uint32) {
			delete(s.shardOf(s.nameHash(key)).entries, key)
			return s, key, serial
		}, true},
		{"a read changed", func(s *packedAnswers, cell *atomic.Uint64) (*packedAnswers, answerKey, uint32) {
			cell.Add(1)
			return s, key, serial
		}, false},
		{"the next serial", func(s *packedAnswers, _ *atomic.Uint64) (*packedAnswers, answerKey, uint32) {
			return s, key, serial + 1
		}, false},
		{"another key", func(s *packedAnswers, _ *atomic.Uint64) (*packedAnswers, answerKey, uint32) {
			other := key
			other.do = true
			return s, other, serial
		}, false},
		{"another handler's cache", func(s *packedAnswers, _ *atomic.Uint64) (*packedAnswers, answerKey, uint32) {
			other := newPackedAnswers(1024)
			other.seed = s.seed // The same slot, so only clearing keeps the old entry out.
			return other, key, serial
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cell := new(atomic.Uint64)
			entry := packedAnswer{basis: []Version{{cell: cell}}, serial: serial, wire: []byte("reply")}
			shared, near := newPackedAnswers(1024), newNearAnswers(2)
			shared.put(key, entry)
			if got, ok := near.get(shared, key, serial); !ok || string(got.wire) != "reply" {
				t.Fatalf("first get = %q, %v; want the shared entry", got.wire, ok)
			}
			s, k, at := tc.change(shared, cell)
			got, ok := near.get(s, k, at)
			if ok != tc.want || ok && string(got.wire) != "reply" {
				t.Errorf("get after the change = %q, %v; want found %v", got.wire, ok, tc.want)
			}
		})
	}
}

// Two names whose hashes choose the same pair of near slots both stay
// there: once copied, each is served from the slots after the shared
// cache has let both go.
func TestNearAnswersKeepTwoNamesOfOneSlot(t *testing.T) {
	const serial = 100
	shared, near := newPackedAnswers(1024), newNearAnswers(1)
	entry := packedAnswer{serial: serial, wire: []byte("reply")}
	_, _ = near.get(shared, answerKey{name: "first."}, serial) // Makes the slots.
	slotOf := func(k answerKey) uint64 { return shared.nameHash(k) & uint64(len(near.slots)-1) &^ 1 }
	a := answerKey{name: "a.skydns.test.", qtype: dns.TypeA}
	b := a
	for i := 0; slotOf(b) != slotOf(a) || b == a; i++ {
		b.name = fmt.Sprintf("b%d.skydns.test.", i)
	}
	for _, k := range []answerKey{a, b} {
		shared.put(k, entry)
		if _, ok := near.get(shared, k, serial); !ok {
			t.Fatalf("%s: not found in the shared cache", k.name)
		}
	}
	for _, k := range []answerKey{a, b} {
		delete(shared.shardOf(shared.nameHash(k)).entries, k) // Only the slots hold them now.
	}
	for _, k := range []answerKey{a, b, a} {
		if _, ok := near.get(shared, k, serial); !ok {
			t.Errorf("%s: not served from the near slots", k.name)
		}
	}
}

// TestNearSlotsOwnTheirNames: a reader's key names the reader's own text
// of the datagram's name (borrowedKeyOf), which the next datagram
// overwrites. A slot that kept that text would, once the next datagram
// is a name of the same length and the same slots, hold that name's key
// with the first name's reply.
func TestNearSlotsOwnTheirNames(t *testing.T) {
	const serial = 100
	shared, near := newPackedAnswers(1024), newNearAnswers(1)
	_, _ = near.get(shared, answerKey{name: "first."}, serial) // Makes the slots.
	slotOf := func(k answerKey) uint64 { return shared.nameHash(k) & uint64(len(near.slots)-1) &^ 1 }
	nameOf := func(i int) string { return fmt.Sprintf("n%04d.skydns.test.", i) }
	a := answerKey{name: nameOf(0), qtype: dns.TypeA, rd: true}
	b := a
	for i := 1; slotOf(b) != slotOf(a) || b == a; i++ {
		b.name = nameOf(i)
	}
	shared.put(a, packedAnswer{serial: serial, wire: []byte("a's reply")})
	// b's AAAA, so that the name filter lets b's A on to the slots.
	shared.put(answerKey{name: b.name, qtype: dns.TypeAAAA, rd: true}, packedAnswer{serial: serial, wire: []byte("b's AAAA")})
	var text nameText
	for _, k := range []answerKey{a, b} {
		query := new(dns.Msg).SetQuestion(k.name, k.qtype)
		wire, err := query.Pack()
		if err != nil {
			t.Fatal(err)
		}
		key, ok := text.borrowedKeyOf(wire)
		if !ok || key != k {
			t.Fatalf("borrowedKeyOf(%s) = %+v, %v; want %+v", k.name, key, ok, k)
		}
		entry, found := near.getBorrowed(shared, key, serial)
		if want := k == a; found != want {
			t.Errorf("%s: found %v (%q), want %v", k.name, found, entry.wire, want)
		}
	}
}

// TestNearSlotsFor checks each reader's share of the packed answers'
// capacity: a power of two, together no more than the capacity, none when
// too small to be worth it, and no more than maxNearSlots.
func TestNearSlotsFor(t *testing.T) {
	tests := []struct{ capacity, readers, want int }{
		{defaultAnswerCache, 1, maxNearSlots},
		{defaultAnswerCache, 2, maxNearSlots},
		{defaultAnswerCache, 16, 2048},
		{defaultAnswerCache, 64, 512},
		{1000, 2, 256},
		{1024, 0, 1024},
		{40, 2, 16},
		{31, 2, 0},
		{0, 1, 0},
	}
	for _, tc := range tests {
		if got := nearSlotsFor(tc.capacity, tc.readers); got != tc.want {
			t.Errorf("nearSlotsFor(%d, %d) = %d, want %d", tc.capacity, tc.readers, got, tc.want)
		}
	}
}
