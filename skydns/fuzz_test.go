package skydns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// scriptedUpstream answers every upstream query in the process, never on
// the network. The first label of the name picks the behaviour, so the
// fuzzer can reach each: a failure, a reply to another question, a reply
// too large for UDP, a CNAME, NXDOMAIN, or else one record.
type scriptedUpstream struct{}

func (scriptedUpstream) Exchange(_ context.Context, req *dns.Msg, network, _ string) (*dns.Msg, error) {
	q := req.Question[0]
	m := new(dns.Msg).SetReply(req)
	first, _, _ := strings.Cut(strings.ToLower(q.Name), ".")
	switch first {
	case "fail":
		return nil, errors.New("scripted failure")
	case "other":
		m.Question[0].Name = "other.example."
	case "many":
		for i := range 200 {
			m.Answer = append(m.Answer, newA(q.Name, 60, net.IPv4(10, 1, byte(i>>8), byte(i))))
		}
	case "cname":
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: rrHeader(q.Name, dns.TypeCNAME, 60), Target: "www.example.com."},
			newA("www.example.com.", 60, net.IPv4(93, 184, 216, 34)))
	case "nx":
		m.Rcode = dns.RcodeNameError
	default:
		m.Answer = append(m.Answer, newA(q.Name, 60, net.IPv4(192, 0, 2, 1)))
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	if network == "udp" {
		m.Truncate(clientBuffer(req)) // As a real server would: within the buffer the query advertised.
	}
	return m, nil
}

// fuzzRecords are testRecords plus a stub zone, whose servers the
// scriptedUpstream stands in for, and a pod of default at the test
// writer's client address, for --autopath.
func fuzzRecords() map[string]string {
	records := map[string]string{
		"ns1.example.org.stub.dns.skydns.test.": `{"host":"192.0.2.53"}`,
		"h.127-0-0-1.default.pod.skydns.test.":  `{"host":"127.0.0.1"}`,
	}
	for name, value := range testRecords {
		records[name] = value
	}
	return records
}

// fuzzHandlers are three configurations between them turning on every
// step and cache: the test defaults with a forwarded-response cache and
// --autopath, stub
// zones with round robin and no packed answers, and a signed zone
// (-dnssec) with round robin and a signature cache of 8.
func fuzzHandlers(f *testing.F) []*Handler {
	ix := loadPodIndex(f, fuzzRecords())
	upstream := func(d *Deps) { d.Exchange = scriptedUpstream{} }
	cached := newTestConfig()
	cached.RCache, cached.Autopath, cached.AutopathSearch = 64, true, []string{"example.org"}
	stubs := newTestConfig()
	stubs.StubZones, stubs.RoundRobin, stubs.AnswerCache = true, true, 0
	signed := newTestConfig()
	signed.DNSSEC, signed.RoundRobin, signed.SCache = writeTestKey(f, f.TempDir(), "skydns.test.", dns.ECDSAP256SHA256, 257), true, 8
	for _, c := range []*Config{cached, signed} {
		if err := c.Finish(); err != nil {
			f.Fatal(err)
		}
	}
	return []*Handler{newTestHandler(f, cached, ix, upstream), newTestHandler(f, stubs, ix, upstream), newTestHandler(f, signed, ix, upstream)}
}

// Handler numbers in a seed's mode byte (bits 1 and 2; see transport).
const (
	fuzzStubsHandler  = 1
	fuzzSignedHandler = 2
)

// fuzzSeeds are requests of every shape for names that reach each step.
func fuzzSeeds(f *testing.F) {
	names := []struct {
		name  string
		qtype uint16
	}{
		{"testservice.default.svc.skydns.test.", dns.TypeA}, {"_http1._tcp.testservice.default.svc.skydns.test.", dns.TypeSRV},
		{"hl.default.svc.skydns.test.", dns.TypeSRV}, {"1.0.0.10.in-addr.arpa.", dns.TypePTR}, {"skydns.test.", dns.TypeNS},
		{"external.skydns.test.", dns.TypeA}, {"*.cname2.skydns.test.", dns.TypeSRV}, {"b.mail.skydns.test.", dns.TypeMX},
		{"long.skydns.test.", dns.TypeTXT}, {"nothing.skydns.test.", dns.TypeAAAA}, {"local.dns.skydns.test.", dns.TypeA},
		{"www.example.org.", dns.TypeA}, {"many.example.com.", dns.TypeA}, {"fail.example.com.", dns.TypeA},
		{"other.example.com.", dns.TypeA}, {"cname.example.com.", dns.TypeA}, {"nx.example.com.", dns.TypeMX},
		{"single", dns.TypeA}, {"www.default.svc.skydns.test.", dns.TypeA}, {"many.example.com.default.svc.skydns.test.", dns.TypeAAAA}, {"skydns.test.", dns.TypeANY}, {"skydns.test.", dns.TypeAXFR},
	}
	for _, n := range names {
		for _, shape := range requestShapes {
			if wire, err := shape.request(n.name, n.qtype, 7).Pack(); err == nil {
				f.Add(transport(shape.tcp), wire)
			}
		}
	}
	for _, m := range []*dns.Msg{chaos(question("version.bind.", dns.TypeTXT, 1)), withOpcode(question("skydns.test.", dns.TypeSOA, 2), dns.OpcodeNotify),
		withClass(question("skydns.test.", dns.TypeA, 3), dns.ClassHESIOD), withCookie(question("x.example.org.", dns.TypeA, 4))} {
		if wire, err := m.Pack(); err == nil {
			f.Add(byte(fuzzStubsHandler<<1), wire)
		}
	}
	for _, n := range names {
		if wire, err := question(n.name, n.qtype, 8).SetEdns0(1232, true).Pack(); err == nil {
			f.Add(byte(fuzzSignedHandler<<1), wire) // DO, to the signed zone.
		}
	}
}

// transport is the mode byte of a seed: bit 0 is TCP, bits 1 and 2 the
// handler.
func transport(tcp bool) byte {
	if tcp {
		return 1
	}
	return 0
}

// FuzzServeDNS sends arbitrary packets through the whole request path,
// (*Handler).ServeDNS, over UDP or TCP, and checks what any client may
// rely on: no panic, at most one reply, which packs, unpacks, has the
// request's id and question, carries OPT only if asked, and fits its
// transport.
func FuzzServeDNS(f *testing.F) {
	fuzzSeeds(f)
	handlers := fuzzHandlers(f)
	maxUDP := newTestConfig().MaxUDPSize
	f.Fuzz(func(t *testing.T, mode byte, wire []byte) {
		req, pristine := new(dns.Msg), new(dns.Msg)
		if req.Unpack(wire) != nil {
			return // The server drops it or answers FORMERR itself.
		}
		_ = pristine.Unpack(wire) // The one the reply is checked against, whatever the handler does to req.
		tcp, handler := mode&1 != 0, int(mode>>1)%len(handlers)
		stubZones := handler == fuzzStubsHandler
		w := &capturingWriter{packingWriter: packingWriter{tcp: tcp}}
		handlers[handler].ServeDNS(w, req)
		// Only a stub zones' loop is dropped on purpose; the rest of what
		// the server passes on (miekg/dns's default accept function: run.go
		// sets none) must be answered.
		looped := stubZones && hasStubLoopOption(pristine)
		if err := checkServed(pristine, w, tcp, serverAccepts(wire) && !looped, min(clientBuffer(pristine), maxUDP)); err != nil {
			t.Fatalf("%v\nrequest (tcp %v, stub zones %v):\n%v", err, tcp, stubZones, pristine)
		}
	})
}

// serverAccepts is the header check miekg/dns's server makes before any
// handler sees a packet.
func serverAccepts(wire []byte) bool {
	if len(wire) < 12 {
		return false
	}
	u16 := func(i int) uint16 { return binary.BigEndian.Uint16(wire[i:]) }
	h := dns.Header{Id: u16(0), Bits: u16(2), Qdcount: u16(4), Ancount: u16(6), Nscount: u16(8), Arcount: u16(10)}
	return dns.DefaultMsgAcceptFunc(h) == dns.MsgAccept
}

// checkServed checks what w captured as the reply to req. Over UDP fit
// (shape.go) truncates a reply to udpLimit, the client's buffer capped at
// --max-udp-size, and a forwarded one is asked for with no larger a buffer.
func checkServed(req *dns.Msg, w *capturingWriter, tcp, mustAnswer bool, udpLimit int) error {
	switch {
	case w.err != nil:
		return fmt.Errorf("the reply does not pack: %w", w.err)
	case w.writes > 1:
		return fmt.Errorf("%d replies written", w.writes)
	case w.writes == 0 && mustAnswer:
		return errors.New("no reply")
	case w.writes == 0:
		return nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(w.buf); err != nil {
		return fmt.Errorf("the reply does not unpack: %w", err)
	}
	limit := dns.MaxMsgSize
	if !tcp {
		limit = udpLimit
	}
	switch {
	case m.Id != req.Id:
		return fmt.Errorf("reply id %d, request id %d", m.Id, req.Id)
	case len(req.Question) == 1 && (len(m.Question) != 1 || m.Question[0] != req.Question[0]):
		return fmt.Errorf("reply question %v, request question %v", m.Question, req.Question)
	case m.IsEdns0() != nil && req.IsEdns0() == nil:
		return errors.New("OPT in the reply to a request without one")
	case len(w.buf) > limit:
		return fmt.Errorf("reply of %d bytes, over the limit of %d:\n%v", len(w.buf), limit, m)
	}
	return nil
}

// capturingWriter is a packingWriter that also counts the writes and
// keeps the packing error, which the handler only logs.
type capturingWriter struct {
	packingWriter
	writes int
	err    error
}

func (w *capturingWriter) WriteMsg(m *dns.Msg) error {
	w.writes++
	w.err = w.packingWriter.WriteMsg(m)
	return w.err
}

func (w *capturingWriter) Write(b []byte) (int, error) {
	w.writes++
	return w.packingWriter.Write(b)
}
