package skydns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sync/errgroup"
)

// skydns reads UDP itself instead of through miekg/dns's server: with
// recvmmsg and sendmmsg a system call carries up to udpBatch datagrams,
// and half the CPU of a packed answer was those calls. Each socket
// (--udp-sockets of them share the address through SO_REUSEPORT, and
// the kernel spreads clients over them) has one reader goroutine, which
// answers packed hits itself, straight from the datagram's bytes
// (udpfast.go), and writes their replies as one batch. Every other
// datagram goes to ServeDNS exactly as miekg/dns's server would hand it
// over (serveDatagram), on a goroutine of its own: those may wait on
// upstream servers for seconds, which must not stall the socket.
const (
	// udpBatch datagrams at most are read per recvmmsg, and the packed
	// replies among them written per sendmmsg: at 32 the calls' own cost
	// is spread thin already, and the reader's buffers stay at
	// 2 × 32 × 512 bytes.
	udpBatch = 32
	// udpReadSize is what miekg/dns's server reads a datagram into (its
	// default UDPSize): a longer one is cut there and answered, or
	// dropped, exactly as before.
	udpReadSize = dns.MinMsgSize
	// udpOOBSize holds the packet-info control message of either family.
	udpOOBSize = 128
	// generalSlack is how many queries off the packed path may be served at
	// once beyond --max-forwards, which bounds the ones waiting upstream:
	// room for in-zone queries while forwarded ones wait. Past that the
	// socket's reader serves the query itself and the kernel's socket
	// buffer holds the rest meanwhile.
	generalSlack = 256
)

// batchConn is the batch I/O of ipv4.PacketConn and ipv6.PacketConn.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpServer serves a set of UDP sockets on one address.
type udpServer struct {
	handler func() *Handler // The current one (serving.handler).
	general dns.Handler     // ServeDNS of the current one.
	slots   chan struct{}   // Goroutines off the packed path, at most its capacity.
	queries sync.WaitGroup  // Those goroutines, for shutdown.
}

// serveUDPSockets reads conns until ctx ends, then closes them and waits
// for the queries in flight; the channel it returns is closed once all is
// done. current is the handler of the moment, general its ServeDNS (which
// looks it up again), and maxForwards --max-forwards. A socket that fails
// otherwise than by closing stops skydns through g.
func serveUDPSockets(ctx context.Context, g *errgroup.Group, conns []*net.UDPConn, current func() *Handler, general dns.Handler, maxForwards int) <-chan struct{} {
	srv := &udpServer{handler: current, general: general, slots: make(chan struct{}, maxForwards+generalSlack)}
	var readers sync.WaitGroup
	for _, c := range conns {
		r, err := newUDPReader(srv, c)
		readers.Add(1)
		g.Go(func() error {
			defer readers.Done()
			if err != nil {
				return err
			}
			if err := r.run(); err != nil && ctx.Err() == nil {
				return fmt.Errorf("dns server (udp): %w", err)
			}
			return nil
		})
	}
	stopped := make(chan struct{})
	g.Go(func() error {
		defer close(stopped)
		<-ctx.Done()
		for _, c := range conns {
			_ = c.Close() // Ends its reader's ReadBatch.
		}
		readers.Wait()
		srv.queries.Wait()
		return nil
	})
	return stopped
}

// serveGeneral runs b through ServeDNS on a goroutine of its own, or on
// the caller's when all slots are taken.
func (s *udpServer) serveGeneral(w *udpWriter, b []byte) {
	select {
	case s.slots <- struct{}{}:
		s.queries.Add(1)
		go func() {
			defer func() { <-s.slots; s.queries.Done() }()
			serveDatagram(s.general, w, b)
		}()
	default:
		serveDatagram(s.general, w, b)
	}
}

// udpReader is one socket's reader and the buffers it reuses.
type udpReader struct {
	srv      *udpServer
	conn     *net.UDPConn
	batch    batchConn
	wildcard bool // Bound to 0.0.0.0 or [::]: each reply must name its source.

	in     []ipv4.Message
	out    []ipv4.Message
	starts []time.Time // When each reply in out was looked up.
	tally  packedTally // The batch's packed replies, for the counters.

	// The last query's packet info and the reply source made from it:
	// nearly every query comes to the same address, and the source is
	// then the same bytes, shared (never written) by the replies.
	lastInfo, lastSource []byte
}

func newUDPReader(srv *udpServer, c *net.UDPConn) (*udpReader, error) {
	r := &udpReader{
		srv: srv, conn: c, batch: ipv4.NewPacketConn(c),
		in: make([]ipv4.Message, udpBatch), out: make([]ipv4.Message, udpBatch), starts: make([]time.Time, udpBatch),
		tally: srv.handler().newPackedTally(),
	}
	local, _ := c.LocalAddr().(*net.UDPAddr)
	if !unixSockets {
		r.batch = singleConn{c}
		return r.allocate(), nil
	}
	if local != nil && local.IP.To4() == nil {
		r.batch = ipv6.NewPacketConn(c)
	}
	if local != nil && local.IP.IsUnspecified() {
		r.wildcard = true
		// As miekg/dns's server: either family's may fail, not both.
		err6 := ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
		err4 := ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
		if err6 != nil && err4 != nil {
			return nil, fmt.Errorf("dns server (udp): packet info: %w", err4)
		}
	}
	return r.allocate(), nil
}

// allocate gives r its buffers, once.
func (r *udpReader) allocate() *udpReader {
	for i := range r.in {
		r.in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
		if r.wildcard {
			r.in[i].OOB = make([]byte, udpOOBSize)
		}
		r.out[i].Buffers = [][]byte{make([]byte, 0, udpReadSize)}
	}
	return r
}

// singleConn is batchConn one datagram at a time, through the net
// package, where x/net cannot read or write messages (unixSockets false).
type singleConn struct{ c *net.UDPConn }

func (s singleConn) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	m := &ms[0]
	n, _, flags, addr, err := s.c.ReadMsgUDP(m.Buffers[0], nil)
	if err != nil {
		return 0, err
	}
	m.N, m.NN, m.Flags, m.Addr = n, 0, flags, addr
	return 1, nil
}

func (s singleConn) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	for i, m := range ms {
		remote, _ := m.Addr.(*net.UDPAddr)
		if _, _, err := s.c.WriteMsgUDP(m.Buffers[0], nil, remote); err != nil {
			return i, err
		}
	}
	return len(ms), nil
}

// run reads batches until the socket closes.
func (r *udpReader) run() error {
	for {
		n, err := r.batch.ReadBatch(r.in, 0)
		var temporary interface{ Temporary() bool }
		switch {
		case errors.Is(err, net.ErrClosed):
			return nil
		case errors.As(err, &temporary) && temporary.Temporary():
			continue // As miekg/dns's server: EMFILE and friends pass.
		case err != nil:
			return err
		}
		r.serve(r.in[:n])
	}
}

// serve answers one batch: packed hits into out, written at once, the rest
// handed to ServeDNS.
func (r *udpReader) serve(batch []ipv4.Message) {
	h := r.srv.handler()
	fast := h.packedFastPath()
	out := 0
	for i := range batch {
		m := &batch[i]
		b := m.Buffers[0][:m.N]
		var source []byte
		if r.wildcard {
			source = r.replySource(m.OOB[:m.NN])
		}
		if fast {
			if reply, start, ok := h.answerPacked(b, r.out[out].Buffers[0][:0], &r.tally); ok {
				r.out[out].Buffers[0], r.out[out].OOB, r.out[out].Addr, r.starts[out] = reply, source, m.Addr, start
				out++
				continue
			}
		}
		remote, _ := m.Addr.(*net.UDPAddr)
		r.srv.serveGeneral(&udpWriter{conn: r.conn, remote: remote, source: source}, bytes.Clone(b))
	}
	if out == 0 {
		return
	}
	r.write(h, r.out[:out])
	for i := range out {
		h.accountPacked(r.starts[i], r.out[i].Buffers[0], &r.tally)
		r.out[i].Addr = nil
	}
	h.addPacked(&r.tally)
}

// write sends ms, skipping past a datagram the kernel refuses (counted
// as sent, as ServeDNS counts a reply whose write failed).
func (r *udpReader) write(h *Handler, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := r.batch.WriteBatch(ms, 0)
		if err != nil {
			h.log.Debug("write reply", "err", err)
			n++
		}
		ms = ms[min(n, len(ms)):]
	}
}

// replySource is replySource(info), made again only when info differs
// from the last query's.
func (r *udpReader) replySource(info []byte) []byte {
	if !bytes.Equal(info, r.lastInfo) {
		r.lastInfo, r.lastSource = append(r.lastInfo[:0], info...), replySource(info)
	}
	return r.lastSource
}

// replySource is the control message that sends a reply from the address
// its query came to, as miekg/dns's server makes it; nil if the query's
// did not say.
func replySource(oob []byte) []byte {
	var cm6 ipv6.ControlMessage
	if cm6.Parse(oob) == nil && cm6.Dst != nil {
		if cm6.Dst.To4() == nil {
			return (&ipv6.ControlMessage{Src: cm6.Dst}).Marshal()
		}
		return (&ipv4.ControlMessage{Src: cm6.Dst}).Marshal()
	}
	var cm4 ipv4.ControlMessage
	if cm4.Parse(oob) == nil && cm4.Dst != nil {
		return (&ipv4.ControlMessage{Src: cm4.Dst}).Marshal()
	}
	return nil
}

// serveDatagram does with b what miekg/dns's server does before it calls
// the handler (Server.serveDNS, v1.1.68), so that a query off the packed
// path is answered, rejected or dropped byte for byte as before: shorter
// than a header, or a response, dropped; refused by dns.DefaultMsgAcceptFunc,
// or not unpacking, FORMERR (NOTIMP for other opcodes) with the header and
// whatever question unpacked.
func serveDatagram(h dns.Handler, w dns.ResponseWriter, b []byte) {
	if len(b) < dnsHeaderLen {
		return
	}
	req := new(dns.Msg)
	action := dns.DefaultMsgAcceptFunc(headerOf(b))
	switch action {
	case dns.MsgAccept:
		if req.Unpack(b) == nil {
			h.ServeDNS(w, req)
			return
		}
		action = dns.MsgReject
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		headerOnly := append(b[:4:4], 0, 0, 0, 0, 0, 0, 0, 0) // The counts zeroed: the header alone.
		_ = req.Unpack(headerOnly)
	default:
		return
	}
	opcode := req.Opcode
	req.SetRcodeFormatError(req)
	req.Zero = false
	if action == dns.MsgRejectNotImplemented {
		req.Opcode, req.Rcode = opcode, dns.RcodeNotImplemented
	}
	req.Ns, req.Answer, req.Extra = nil, nil, nil
	_ = w.WriteMsg(req)
}

// headerOf is the header at the start of b, at least dnsHeaderLen long.
func headerOf(b []byte) dns.Header {
	return dns.Header{
		Id: be16(b, 0), Bits: be16(b, 2), Qdcount: be16(b, 4), Ancount: be16(b, 6), Nscount: be16(b, 8), Arcount: be16(b, 10),
	}
}

// udpWriter is the dns.ResponseWriter of a query off the packed path: it
// writes to the socket the query came in on.
type udpWriter struct {
	conn   *net.UDPConn
	remote *net.UDPAddr
	source []byte // Control message naming the reply's source; nil: the socket's.
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return w.remote }

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *udpWriter) Write(b []byte) (int, error) {
	n, _, err := w.conn.WriteMsgUDP(b, w.source, w.remote)
	return n, err
}

func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return nil }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}
