package skydns

import (
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/skydns/msg"
)

// packingWriter is a dns.ResponseWriter that packs replies as the real
// server would, so a benchmark includes the wire encoding. buf holds the
// last reply's bytes.
type packingWriter struct {
	buf []byte
	tcp bool // Whether the client seems to have come over TCP.
}

func (w *packingWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *packingWriter) RemoteAddr() net.Addr {
	if w.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (w *packingWriter) WriteMsg(m *dns.Msg) error {
	var err error
	w.buf, err = m.PackBuffer(w.buf[:0])
	return err
}
func (w *packingWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf[:0], b...)
	return len(b), nil
}
func (w *packingWriter) Close() error        { return nil }
func (w *packingWriter) TsigStatus() error   { return nil }
func (w *packingWriter) TsigTimersOnly(bool) {}
func (w *packingWriter) Hijack()             {}

// BenchmarkServeA is one in-zone A query for one of 10,000 services in
// kube2sky's layout, from the request to packed reply bytes: "packed" as
// served by default, repeated names coming from the packed answers;
// "packed-churn" the same while another service's record changes every
// 100 queries, as endpoints do in a busy cluster; and "built" with
// --answer-cache=0, every reply looked up and packed anew.
func BenchmarkServeA(b *testing.B) {
	ix, reqs := benchServices(b)
	for _, bc := range []struct {
		name        string
		answerCache int
		changeEvery int // 0: no changes.
	}{{"packed", defaultAnswerCache, 0}, {"packed-churn", defaultAnswerCache, 100}, {"built", 0, 0}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := newTestConfig()
			cfg.AnswerCache = bc.answerCache
			h := newTestHandler(b, cfg, ix)
			w := &packingWriter{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if bc.changeEvery > 0 && i%bc.changeEvery == 0 {
					// Services 1-6 mod 7 are never asked for.
					n := 7*(i/bc.changeEvery%1000) + 1
					ix.Put(msg.Service{Key: msg.Path(fmt.Sprintf("e%d.svc-%d.ns-%d.svc.skydns.test.", i%2, n, n/5000), "skydns"), Host: "10.200.0.1"})
				}
				h.ServeDNS(w, reqs[i%len(reqs)])
			}
		})
	}
}

// benchServices is an index of 10,000 services in kube2sky's layout and
// A queries for 1,000 of them (services 1-6 mod 7 are never asked for).
func benchServices(b *testing.B) (*Index, []*dns.Msg) {
	records := map[string]string{}
	for i := 0; i < 10000; i++ {
		name := fmt.Sprintf("svc-%d.ns-%d.svc.skydns.test.", i, i/5000)
		records["a1b2c3d4."+name] = fmt.Sprintf(`{"host":"10.100.%d.%d","priority":10,"weight":10,"ttl":30}`, i>>8, i&255)
		records["a1b2c3d4._http._tcp."+name] = `{"host":"` + name + `","port":80,"priority":10,"weight":10,"ttl":30}`
	}
	reqs := make([]*dns.Msg, 1000)
	for i := range reqs {
		reqs[i] = new(dns.Msg)
		reqs[i].SetQuestion(fmt.Sprintf("svc-%d.ns-%d.svc.skydns.test.", i*7, i*7/5000), dns.TypeA)
	}
	return loadIndex(b, records), reqs
}

// BenchmarkServeLargeAnswer is one A query over UDP, EDNS0 buffer 65535,
// for a name with 3,000 addresses: the amplification attack's query,
// whose reply is cut at --max-udp-size but whose records are all gathered,
// shuffled and measured first.
func BenchmarkServeLargeAnswer(b *testing.B) {
	ix := loadIndex(b, numbered(3000, "n%d.big.skydns.test.", address))
	cfg := newTestConfig()
	cfg.RoundRobin = true
	h := newTestHandler(b, cfg, ix)
	req := question("big.skydns.test.", dns.TypeA, 1).SetEdns0(65535, false)
	w := &packingWriter{}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, req)
	}
}
