package skydns

import (
	"fmt"
	"math/rand/v2"
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

// benchRecords are 10,000 services in kube2sky's layout, two namespaces of
// 5,000: each with its ClusterIP (10.100.x.y), a named-port SRV record and
// the reverse record of its address; and 100 headless services
// (hl-N.ns-0) of four endpoints each.
func benchRecords() map[string]string {
	records := manyRecords(10000)
	for i := 0; i < 100; i++ {
		for e := range 4 {
			records[fmt.Sprintf("e%d.hl-%d.ns-0.svc.skydns.test.", e, i)] = fmt.Sprintf(`{"host":"10.101.%d.%d","priority":10,"weight":10,"ttl":30}`, i, e)
		}
	}
	return records
}

// BenchmarkServeLocal is the in-zone queries other than a plain A, each
// over the 1,000 names asked for in turn, as served by default: "srv" a
// service's named port; "nxdomain-search" a search-list miss
// (svc.ns.svc.<domain> with the pod's own search suffix appended);
// "ptr" a service address; "headless-rr" the four addresses of a headless
// service with -round-robin; "a-cookie" a plain A from a client sending a
// DNS cookie, as dig does.
func BenchmarkServeLocal(b *testing.B) {
	ix := loadIndex(b, benchRecords())
	svc := func(i int) string { return fmt.Sprintf("svc-%d.ns-%d.svc.skydns.test.", i*7, i*7/5000) }
	cases := []struct {
		name       string
		roundRobin bool
		request    func(i int) *dns.Msg
	}{
		{"srv", false, func(i int) *dns.Msg { return question("_http._tcp."+svc(i), dns.TypeSRV, 1) }},
		{"nxdomain-search", false, func(i int) *dns.Msg {
			return question(svc(i)+fmt.Sprintf("ns-%d.svc.skydns.test.", i*7/5000), dns.TypeA, 1)
		}},
		{"ptr", false, func(i int) *dns.Msg {
			return question(fmt.Sprintf("%d.%d.100.10.in-addr.arpa.", i*7&255, i*7>>8), dns.TypePTR, 1)
		}},
		{"headless-rr", true, func(i int) *dns.Msg { return question(fmt.Sprintf("hl-%d.ns-0.svc.skydns.test.", i%100), dns.TypeA, 1) }},
		{"a-cookie", false, func(i int) *dns.Msg { return withCookie(question(svc(i), dns.TypeA, 1)) }},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			cfg := newTestConfig()
			cfg.RoundRobin = bc.roundRobin
			h := newTestHandler(b, cfg, ix)
			reqs := make([]*dns.Msg, 1000)
			for i := range reqs {
				reqs[i] = bc.request(i)
			}
			w := &packingWriter{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.ServeDNS(w, reqs[i%len(reqs)])
			}
		})
	}
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

// benchServices is the index of benchRecords and A queries for 1,000 of
// its services (services 1-6 mod 7 are never asked for).
func benchServices(b *testing.B) (*Index, []*dns.Msg) {
	ix := loadIndex(b, benchRecords())
	reqs := make([]*dns.Msg, 1000)
	for i := range reqs {
		reqs[i] = new(dns.Msg)
		reqs[i].SetQuestion(fmt.Sprintf("svc-%d.ns-%d.svc.skydns.test.", i*7, i*7/5000), dns.TypeA)
	}
	return ix, reqs
}

// BenchmarkServeMany is what make bench's mixes at 100,000 services ask
// (docs/benchmarks.md): each name of the mix once, in a random order, over
// and over, through ServeDNS with the packed answers at their default
// capacity ("default") and at one that holds every name ("all"). A mix
// of more distinct names than the capacity misses in proportion; run it
// with -cpuprofile to see what a miss costs at this size.
func BenchmarkServeMany(b *testing.B) {
	ix, mixes := manyMixes(b)
	for _, mix := range mixes {
		for _, capacity := range manyCapacities {
			b.Run(mix.name+"/"+capacity.name, func(b *testing.B) {
				h := manyHandler(b, ix, capacity.limit, mix.reqs)
				w := &packingWriter{}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					h.ServeDNS(w, mix.reqs[i%len(mix.reqs)])
				}
			})
		}
	}
}

// manyServices is the size of BenchmarkServeMany's index.
const manyServices = 100000

// manyMix is one of BenchmarkServeMany's mixes: every query once, in a
// random order.
type manyMix struct {
	name string
	reqs []*dns.Msg
}

// manyMixes are BenchmarkServeMany's index and mixes.
func manyMixes(b *testing.B) (*Index, []manyMix) {
	ix := loadIndex(b, manyRecords(manyServices))
	r := rand.New(rand.NewPCG(1, 2))
	asks := []struct {
		name string
		ask  func(i int) *dns.Msg
	}{
		{"a", func(i int) *dns.Msg { return question(manyService(i), dns.TypeA, 1) }},
		{"ptr", func(i int) *dns.Msg { return question(mustReverse(manyAddress(i)), dns.TypePTR, 1) }},
		{"nxdomain", func(i int) *dns.Msg {
			return question(manyService(i)+fmt.Sprintf("ns-%d.svc.skydns.test.", i/5000), dns.TypeA, 1)
		}},
	}
	mixes := make([]manyMix, len(asks))
	for m, a := range asks {
		mixes[m] = manyMix{name: a.name, reqs: make([]*dns.Msg, manyServices)}
		for i, n := range r.Perm(manyServices) {
			mixes[m].reqs[i] = a.ask(n)
		}
	}
	return ix, mixes
}

// manyCapacities are the packed answers' capacities BenchmarkServeMany
// runs at: the default, and one that holds every name.
var manyCapacities = []struct {
	name  string
	limit int
}{{"default", defaultAnswerCache}, {"all", 2 * manyServices}}

// manyHandler serves ix with packed answers of capacity limit, warmed
// with reqs: the cache as full as it gets.
func manyHandler(b *testing.B, ix *Index, limit int, reqs []*dns.Msg) *Handler {
	cfg := newTestConfig()
	cfg.AnswerCache = limit
	h := newTestHandler(b, cfg, ix)
	w := &packingWriter{}
	for _, req := range reqs {
		h.ServeDNS(w, req)
	}
	return h
}

// manyRecords are n services in kube2sky's layout, 5,000 to a namespace:
// a ClusterIP each, a named-port SRV record, and its address's PTR.
func manyRecords(n int) map[string]string {
	records := make(map[string]string, 3*n)
	for i := range n {
		name := manyService(i)
		records["a1b2c3d4."+name] = `{"host":"` + manyAddress(i) + `","priority":10,"weight":10,"ttl":30}`
		records["a1b2c3d4._http._tcp."+name] = `{"host":"` + name + `","port":80,"priority":10,"weight":10,"ttl":30}`
		records[mustReverse(manyAddress(i))] = `{"host":"` + name + `","ttl":30}`
	}
	return records
}

func manyService(i int) string { return fmt.Sprintf("svc-%d.ns-%d.svc.skydns.test.", i, i/5000) }

func manyAddress(i int) string { return fmt.Sprintf("10.%d.%d.%d", 100+i>>16, i>>8&255, i&255) }

// mustReverse is the in-addr.arpa name of ip.
func mustReverse(ip string) string {
	name, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return name
}
