package skydns

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

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
// built, for every shape of request the key distinguishes, with the id of
// the request at hand.
func TestPackedAnswersEqualBuiltReplies(t *testing.T) {
	ix := loadIndex(t, testRecords)
	cached := newTestHandler(t, newTestConfig(), ix)
	off := newTestConfig()
	off.AnswerCache = 0
	built := newTestHandler(t, off, ix)

	var names []string
	for name := range testRecords {
		names = append(names, strings.ToLower(msg.Domain(msg.Path(name, "skydns"))))
	}
	names = append(names, "testservice.default.svc.skydns.test.", "hl.default.svc.skydns.test.", "nowhere.skydns.test.")
	id := uint16(1)
	for _, name := range names {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			for _, shape := range requestShapes {
				t.Run(fmt.Sprintf("%s/%s/%s", name, dns.TypeToString[qtype], shape.name), func(t *testing.T) {
					want := serve(t, built, shape.request(name, qtype, id), shape.tcp)
					// Twice: the first builds and may keep the reply, the
					// second may be served from it, under another id.
					for range 2 {
						got := serve(t, cached, shape.request(name, qtype, id), shape.tcp)
						want[0], want[1] = got[0], got[1]
						if !bytes.Equal(got, want) {
							t.Fatalf("served\n%v\nbuilt\n%v", unpack(t, got), unpack(t, want))
						}
						if unpack(t, got).Id != id {
							t.Fatalf("reply id %d, want %d", unpack(t, got).Id, id)
						}
						id++
					}
				})
			}
		}
	}
	if cached.PackedEntries() == 0 {
		t.Fatal("no reply was kept: the cache was not exercised")
	}
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

// Replies that differ between requests with the same key, or that hold
// data not from the index, are built every time and never kept; the rest
// are kept, negative ones included.
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
		{"round robin shuffles", rr, question("hl.default.svc.skydns.test.", dns.TypeA, 1), answers(2), false},
		{"cname to upstream data", newTestConfig(), question("external.skydns.test.", dns.TypeA, 1), answers(2), false},
		{"address beside a name upstream may resolve later", newTestConfig(), question("mixedhost.skydns.test.", dns.TypeA, 1), answers(1), false},
		{"in-zone cname", newTestConfig(), question("1.backend.in.skydns.test.", dns.TypeA, 1), answers(3), false},
		{"srv", newTestConfig(), question("testservice.default.svc.skydns.test.", dns.TypeSRV, 1), answers(1), false},
		{"edns option", newTestConfig(), withCookie(question("testservice.default.svc.skydns.test.", dns.TypeA, 1)), answers(1), false},
		{"chaos class", newTestConfig(), chaos(question("version.bind.", dns.TypeA, 1)), answers(0), false},
		{"forwarded", forwarding, question("www.example.com.", dns.TypeA, 1), answers(1), false},
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
// lookups split into hits and misses.
func TestPackedAnswersAreCounted(t *testing.T) {
	h := newTestHandler(t, newTestConfig(), loadIndex(t, testRecords))
	for range 3 {
		serve(t, h, question("nothing.skydns.test.", dns.TypeA, 1), false)
		serve(t, h, question("testservice.default.svc.skydns.test.", dns.TypeA, 1), false)
	}
	for _, c := range []struct {
		name string
		got  prometheus.Counter
		want float64
	}{
		{"NXDOMAIN responses", h.metrics.rcodes[dns.RcodeNameError], 3},
		{"NOERROR responses", h.metrics.rcodes[dns.RcodeSuccess], 3},
		{"hits", h.metrics.packedHits, 4},
		{"misses", h.metrics.packedMisses, 2},
	} {
		if got := testutilCounter(c.got); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
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
	put := func(name, host string) func() {
		return func() { ix.Put(msg.Service{Key: msg.Path(name, "skydns"), Host: host}) }
	}
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
		hits := testutilCounter(h.metrics.packedHits)
		m := unpack(t, serve(t, h, question(step.qname, dns.TypeA, 1), false))
		if hit := testutilCounter(h.metrics.packedHits) > hits; hit != step.hit {
			t.Errorf("%s: served packed %v, want %v", step.name, hit, step.hit)
		}
		if m.Rcode != step.rcode {
			t.Errorf("%s: rcode %s, want %s", step.name, dns.RcodeToString[m.Rcode], dns.RcodeToString[step.rcode])
		}
	}
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

// FuzzPackedEqualsBuilt feeds arbitrary requests to a handler with packed
// answers and to one without: whenever the cache may answer, asking twice
// (a miss, then perhaps a hit) must give the built reply's exact bytes.
func FuzzPackedEqualsBuilt(f *testing.F) {
	for _, shape := range requestShapes {
		for _, name := range []string{"testservice.default.svc.skydns.test.", "nothing.skydns.test.", "1.backend.in.skydns.test.", "*.ipaddr.skydns.test."} {
			if wire, err := shape.request(name, dns.TypeA, 7).Pack(); err == nil {
				f.Add(wire)
			}
		}
	}
	ix := loadIndex(f, testRecords)
	newHandler := func(answerCache int) *Handler {
		cfg := newTestConfig()
		cfg.NoRec = true // Nothing leaves the process.
		cfg.AnswerCache = answerCache
		return newTestHandler(f, cfg, ix)
	}
	cached, built := newHandler(defaultAnswerCache), newHandler(0)
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
		want := serve(t, built, req, false)
		for range 2 {
			if got := serve(t, cached, req, false); !bytes.Equal(got, want) {
				t.Fatalf("request %v\nserved\n%v\nbuilt\n%v", req, unpack(t, got), unpack(t, want))
			}
		}
	})
}
