package skydns

import (
	"context"
	"hash/crc32"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
)

// packedBenchHandler serves benchServices with every query's reply
// packed already; it returns the queries as messages and as datagrams.
func packedBenchHandler(b *testing.B) (*Handler, []*dns.Msg, [][]byte) {
	ix, reqs := benchServices(b)
	h := newTestHandler(b, newTestConfig(), ix)
	wires := make([][]byte, len(reqs))
	for i, r := range reqs {
		wires[i] = packQuery(b, r)
		ask(b, h, r, "udp") // Packs its reply: from now on it hits.
	}
	return h, reqs, wires
}

// BenchmarkServeAParallel is BenchmarkServeA's packed hits from every
// core at once (run with -cpu 1,2,...: ns/op, and cpu-ns/op on a busy
// machine, say how far throughput grows with the cores; see
// runParallelCPU): "ServeDNS" through the handler, as
// TCP and a miss take it, "unpack+ServeDNS" the same from the datagram's
// bytes, and "fast" the UDP reader's path from the datagram's bytes
// (answerPacked and accountPacked).
func BenchmarkServeAParallel(b *testing.B) {
	h, reqs, wires := packedBenchHandler(b)
	// unshared is work of about the same length that shares nothing: its
	// ratio between -cpu values is what the machine gives at the moment.
	b.Run("unshared", func(b *testing.B) {
		runParallelCPU(b, func(pb *testing.PB) {
			buf := make([]byte, 512)
			for pb.Next() {
				buf[0] = byte(crc32.ChecksumIEEE(buf))
			}
		})
	})
	b.Run("ServeDNS", func(b *testing.B) {
		b.ReportAllocs()
		runParallelCPU(b, func(pb *testing.PB) {
			w := newUnsharedWriter()
			for i := 0; pb.Next(); i++ {
				h.ServeDNS(w, reqs[i%len(reqs)])
			}
		})
	})
	// The other design for the reader: unpack each datagram into a
	// dns.Msg, as miekg/dns's server does, and let ServeDNS find the
	// packed reply.
	b.Run("unpack+ServeDNS", func(b *testing.B) {
		b.ReportAllocs()
		runParallelCPU(b, func(pb *testing.PB) {
			w := newUnsharedWriter()
			for i := 0; pb.Next(); i++ {
				m := new(dns.Msg)
				if err := m.Unpack(wires[i%len(wires)]); err != nil {
					b.Fatal(err)
				}
				h.ServeDNS(w, m)
			}
		})
	})
	// The reader's batches hold up to udpBatch datagrams; 8 stands for a
	// busy socket's.
	const batch = 8
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		runParallelCPU(b, func(pb *testing.PB) {
			buf := make([]byte, 0, udpReadSize)
			tally, near := h.newReaderTally(), newNearAnswers(1)
			var text nameText
			for i := 0; pb.Next(); i++ {
				wire := wires[i%len(wires)]
				key, _ := text.borrowedKeyOf(wire)
				reply, start, ok := h.answerPacked(key, wire, buf, &tally, near)
				if !ok {
					b.Fatal("not a packed hit")
				}
				h.accountPacked(start, reply, &tally)
				if i%batch == batch-1 {
					tally.addUp()
				}
			}
		})
	})
	// "reader" is ServeDNS as a UDP reader calls it for what the fast
	// path leaves (misses, EDNS options): unpacked from the datagram, the
	// reply into the batch, counted in the reader's tally.
	b.Run("reader", func(b *testing.B) {
		b.ReportAllocs()
		runParallelCPU(b, func(pb *testing.PB) {
			r := benchReader(h)
			for i := 0; pb.Next(); i++ {
				q := r.query
				q.begin(r, clientAddr, nil, nil, false)
				serveDatagram(h, r.ctx, q, wires[i%len(wires)])
				if i%batch == batch-1 {
					r.flush()
				}
			}
		})
	})
}

// BenchmarkReaderMany is BenchmarkServeMany's mixes as a UDP reader
// serves them, from the datagrams' bytes in batches of udpBatch: packed
// hits on the fast path, misses unpacked and through ServeDNS, replies
// written nowhere. This is the server's own share of what make bench
// measures at 100,000 services, without the kernel's.
func BenchmarkReaderMany(b *testing.B) {
	ix, mixes := manyMixes(b)
	for _, mix := range mixes {
		batches := datagramBatches(b, mix.reqs)
		for _, capacity := range manyCapacities {
			b.Run(mix.name+"/"+capacity.name, func(b *testing.B) {
				r := benchReader(manyHandler(b, ix, capacity.limit, mix.reqs))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += udpBatch {
					r.serve(batches[(i/udpBatch)%len(batches)])
				}
			})
		}
	}
}

// datagramBatches are reqs packed, udpBatch to a batch as a reader reads
// them.
func datagramBatches(b *testing.B, reqs []*dns.Msg) [][]ipv4.Message {
	var batches [][]ipv4.Message
	for len(reqs) >= udpBatch {
		batch := make([]ipv4.Message, udpBatch)
		for i, req := range reqs[:udpBatch] {
			wire := packQuery(b, req)
			batch[i] = ipv4.Message{Buffers: [][]byte{wire}, N: len(wire), Addr: clientAddr}
		}
		batches, reqs = append(batches, batch), reqs[udpBatch:]
	}
	return batches
}

var clientAddr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// newUnsharedWriter is a packingWriter on cache lines of its own: two
// goroutines' writers, 32 bytes each and written on every query, would
// otherwise often share a line, and the benchmark would measure that.
func newUnsharedWriter() *packingWriter {
	padded := new(struct {
		_ [64]byte
		w packingWriter
		_ [64]byte
	})
	return &padded.w
}

// benchReader is a UDP reader of h with no socket: its batches are
// written nowhere.
func benchReader(h *Handler) *udpReader {
	r := newReader(&udpServer{handler: func() *Handler { return h }}, nil, discardBatch{}, false)
	r.h, r.fast = h, h.packedFastPath() // As serve sets them for a batch.
	return r
}

// discardBatch writes every message and reads none.
type discardBatch struct{}

func (discardBatch) ReadBatch([]ipv4.Message, int) (int, error) { return 0, net.ErrClosed }
func (discardBatch) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	return len(ms), nil
}

// runParallelCPU is b.RunParallel(body) that also reports the process's
// CPU time per op ("cpu-ns/op") and the cores it kept busy ("cpus", CPU
// time over wall time). On a machine shared with other work wall time
// says little about scaling; CPU time per op does, as long as "cpus" is
// near GOMAXPROCS: words that cores write in turn make each op cost more
// CPU, so throughput at n cores is n × cpu-ns/op at 1 ÷ cpu-ns/op at n.
func runParallelCPU(b *testing.B, body func(*testing.PB)) {
	before, start := processCPU(b), time.Now()
	b.RunParallel(body)
	cpu, wall := processCPU(b)-before, time.Since(start)
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpus")
}

// BenchmarkBatchedUDP is packed hits over loopback through the batched
// readers of 2 sockets: each of the benchmark's goroutines is a client
// with 16 queries in flight on its own socket. The clients share the
// machine's cores with the server, so this measures the whole exchange,
// not the server alone.
func BenchmarkBatchedUDP(b *testing.B) {
	h, _, wires := packedBenchHandler(b)
	addr := serveBatched(b, h, "127.0.0.1:0", 2)
	const inFlight = 16
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := new(net.Dialer).DialContext(context.Background(), "udp", addr.String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, dns.MinMsgSize)
		sent := 0
		for ; sent < inFlight && pb.Next(); sent++ {
			_, _ = c.Write(wires[sent%len(wires)])
		}
		for ; sent > 0; sent-- {
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
			if pb.Next() {
				_, _ = c.Write(wires[sent%len(wires)])
				sent++
			}
		}
	})
}

// BenchmarkSharedWords is what each shared word on the packed path costs
// when every core writes it: the packed answers' read lock, and the
// metrics a packed hit counts (requests, hits, responses: a counter each;
// the latency: a histogram). Compare -cpu 1 and 2 with "unshared" above.
func BenchmarkSharedWords(b *testing.B) {
	var mu sync.RWMutex
	guarded := 0
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "c"})
	histogram := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: []float64{0.00005, 0.0001, 0.00025}})
	for _, bc := range []struct {
		name string
		op   func()
	}{
		{"RWMutex.RLock", func() { mu.RLock(); _ = guarded; mu.RUnlock() }},
		{"Counter.Inc", counter.Inc},
		{"Histogram.Observe", func() { histogram.Observe(0.00007) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bc.op()
				}
			})
		})
	}
}
