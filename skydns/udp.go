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
// serves every datagram of a batch itself and writes their replies as one
// batch: packed hits straight from the datagram's bytes (udpfast.go), the
// rest through ServeDNS, exactly as miekg/dns's server would hand them
// over (serveDatagram). The one thing a reader must not do is wait: a
// query about to ask an upstream server (forwarded, a stub zone's, a
// CNAME chased out of the zone) takes the reader's place instead
// (leaveReader): the batch so far is sent, the reader goes on with the
// rest on a new goroutine, and the query waits on the old one and writes
// its reply alone. So a query costs a goroutine only when it waits, and
// those are bounded by --max-forwards, which is checked before.
const (
	// udpBatch datagrams at most are read per recvmmsg, and their replies
	// written per sendmmsg: at 32 the calls' own cost is spread thin
	// already, and the reader's buffers stay at 2 × 32 × 512 bytes (a
	// reply buffer grows to the largest reply it has held, at most
	// --max-udp-size).
	udpBatch = 32
	// udpReadSize is what miekg/dns's server reads a datagram into (its
	// default UDPSize): a longer one is cut there and answered, or
	// dropped, exactly as before.
	udpReadSize = dns.MinMsgSize
	// udpOOBSize holds the packet-info control message of either family.
	udpOOBSize = 128
)

// batchConn is the batch I/O of ipv4.PacketConn and ipv6.PacketConn.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpServer serves a set of UDP sockets on one address.
type udpServer struct {
	ctx     context.Context // Ends when the sockets are to close.
	g       *errgroup.Group
	handler func() *Handler // The current one (serving.handler).
	readers sync.WaitGroup  // Every reader, and every query that left one.
	sockets int             // One reader each.
}

// serveUDPSockets reads conns until ctx ends, then closes them and waits
// for the queries in flight; the channel it returns is closed once all is
// done. current is the handler of the moment. A socket that fails
// otherwise than by closing stops skydns through g.
func serveUDPSockets(ctx context.Context, g *errgroup.Group, conns []*net.UDPConn, current func() *Handler) <-chan struct{} {
	srv := &udpServer{ctx: ctx, g: g, handler: current, sockets: len(conns)}
	for _, c := range conns {
		r, err := newUDPReader(srv, c)
		if err != nil {
			g.Go(func() error { return err })
			continue
		}
		srv.start(r, nil)
	}
	stopped := make(chan struct{})
	g.Go(func() error {
		defer close(stopped)
		<-ctx.Done()
		for _, c := range conns {
			_ = c.Close() // Ends its reader's ReadBatch.
		}
		srv.readers.Wait()
		return nil
	})
	return stopped
}

// start runs r on a goroutine of its own, first serving pending, the rest
// of a batch that a query left it with.
func (s *udpServer) start(r *udpReader, pending []ipv4.Message) {
	s.readers.Add(1)
	s.g.Go(func() error {
		defer s.readers.Done()
		if err := r.run(pending); err != nil && s.ctx.Err() == nil {
			return fmt.Errorf("dns server (udp): %w", err)
		}
		return nil
	})
}

// udpReader is one socket's reader and the buffers it reuses.
type udpReader struct {
	_        [64]byte // What a reader writes for each query shares no cache line with another's (BenchmarkServeAParallel/reader).
	srv      *udpServer
	conn     *net.UDPConn
	batch    batchConn
	wildcard bool // Bound to 0.0.0.0 or [::]: each reply must name its source.

	in      []ipv4.Message
	out     []ipv4.Message
	pending int            // Replies in out, not sent yet.
	starts  []time.Time    // When each packed reply in out was looked up.
	built   [udpBatch]bool // Which replies in out ServeDNS wrote (and counted).
	// outBuffers are out's Buffers, which each reply sets: here, where
	// no other reader's words are.
	outBuffers [udpBatch][1][]byte
	tally      readerTally // The batch's queries, for the counters.
	near       *nearAnswers
	fast       bool     // The batch's handler has the fast path, and near is in use.
	name       nameText // The text of the name of the datagram being served.
	h          *Handler // The batch's.

	// query is the one served through ServeDNS at the moment, and ctx the
	// context it is served in, which carries query for leaveReader. Both
	// are made anew when a query leaves with the old ones.
	query *inlineQuery
	ctx   context.Context

	// The last query's packet info and the reply source made from it:
	// nearly every query comes to the same address, and the source is
	// then the same bytes, shared (never written) by the replies.
	lastInfo, lastSource []byte
	_                    [64]byte
}

func newUDPReader(srv *udpServer, c *net.UDPConn) (*udpReader, error) {
	batch, wildcard, err := batchOf(c)
	if err != nil {
		return nil, err
	}
	return newReader(srv, c, batch, wildcard), nil
}

// newReader is a reader of c through batch, with its buffers.
func newReader(srv *udpServer, c *net.UDPConn, batch batchConn, wildcard bool) *udpReader {
	r := &udpReader{
		srv: srv, conn: c, batch: batch, wildcard: wildcard,
		in: make([]ipv4.Message, udpBatch), out: make([]ipv4.Message, udpBatch),
		starts: make([]time.Time, udpBatch),
		tally:  srv.handler().newReaderTally(), near: newNearAnswers(srv.sockets),
	}
	r.newQuery()
	return r.allocate()
}

// batchOf is the batch I/O of c for its address family, and whether c is
// bound to the wildcard address (each reply must then name its source,
// from the packet info turned on here).
func batchOf(c *net.UDPConn) (batchConn, bool, error) {
	if !unixSockets {
		return singleConn{c}, false, nil
	}
	local, _ := c.LocalAddr().(*net.UDPAddr)
	var batch batchConn = ipv4.NewPacketConn(c)
	if local != nil && local.IP.To4() == nil {
		batch = ipv6.NewPacketConn(c)
	}
	if local == nil || !local.IP.IsUnspecified() {
		return batch, false, nil
	}
	// As miekg/dns's server: either family's may fail, not both.
	err6 := ipv6.NewPacketConn(c).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
	err4 := ipv4.NewPacketConn(c).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
	if err6 != nil && err4 != nil {
		return nil, false, fmt.Errorf("dns server (udp): packet info: %w", err4)
	}
	return batch, true, nil
}

// allocate gives r its buffers, once.
func (r *udpReader) allocate() *udpReader {
	for i := range r.in {
		r.in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
		if r.wildcard {
			r.in[i].OOB = make([]byte, udpOOBSize)
		}
		r.outBuffers[i][0] = make([]byte, 0, udpReadSize)
		r.out[i].Buffers = r.outBuffers[i][:]
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
// run serves pending, then reads batches until the socket closes or a
// query takes the reader's goroutine (leaveReader).
func (r *udpReader) run(pending []ipv4.Message) error {
	if len(pending) > 0 && r.serve(pending) {
		return nil
	}
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
		if r.serve(r.in[:n]) {
			return nil
		}
	}
}

// serve answers one batch, packed hits from their bytes and the rest
// through ServeDNS, and writes the replies at once. It reports whether a
// query left with the goroutine: the reader then goes on elsewhere.
func (r *udpReader) serve(batch []ipv4.Message) (left bool) {
	r.h = r.srv.handler()
	r.fast = r.h.packedFastPath()
	if !r.fast {
		r.near.release()
	}
	for i := range batch {
		m := &batch[i]
		b := m.Buffers[0][:m.N]
		var source []byte
		if r.wildcard {
			source = r.replySource(m.OOB[:m.NN])
		}
		key, keyed := r.name.borrowedKeyOf(b)
		if keyed && r.fast && r.answerPacked(key, b, m.Addr, source) {
			continue
		}
		q := r.query
		q.begin(r, m.Addr, source, batch[i+1:], keyed && r.fast)
		if keyed { // A query miekg/dns's server accepts: as serveDatagram, without unpacking.
			r.h.serve(r.ctx, q, q.keyed.unpack(b, ownName(key))) // The request may outlive r.name's text.
		} else {
			serveDatagram(r.h, r.ctx, q, b)
		}
		if q.reader == nil {
			return true
		}
	}
	r.flush()
	return false
}

// answerPacked puts the packed reply to b, if there is one, among the
// batch's replies.
func (r *udpReader) answerPacked(key answerKey, b []byte, remote net.Addr, source []byte) bool {
	slot := &r.out[r.pending]
	reply, start, ok := r.h.answerPacked(key, b, slot.Buffers[0][:0], &r.tally, r.near)
	if ok {
		slot.Buffers[0], slot.OOB, slot.Addr = reply, source, remote
		r.starts[r.pending], r.built[r.pending] = start, false
		r.pending++
	}
	return ok
}

// flush sends the batch's replies, notes the packed ones in the tally, as
// ServeDNS noted the others when it wrote them, and adds the tally to the
// counters.
func (r *udpReader) flush() {
	out := r.out[:r.pending]
	r.pending = 0
	if len(out) > 0 {
		r.write(r.h, out)
	}
	for i := range out {
		if !r.built[i] {
			r.h.accountPacked(r.starts[i], out[i].Buffers[0], &r.tally)
		}
		out[i].Addr = nil
	}
	r.tally.addUp() // Queries dropped or not answered yet count too.
}

// newQuery gives the reader a query and context of its own, the old ones
// having left with a query (or there being none yet).
func (r *udpReader) newQuery() {
	r.query = new(inlineQuery)
	r.ctx = context.WithValue(r.srv.handler().base, inlineQueryKey{}, r.query)
}

// inlineQueryKey is the context key of the inlineQuery a reader serves.
type inlineQueryKey struct{}

// leaveReader is called by a query about to wait on the network. If a UDP
// reader is serving it, the reader sends the replies it has, and goes on
// with the rest of its batch on a new goroutine; the query keeps the old
// one, and writes its reply alone. Called again, it does nothing.
func leaveReader(ctx context.Context) {
	q, ok := ctx.Value(inlineQueryKey{}).(*inlineQuery)
	if !ok || q.reader == nil {
		return
	}
	r := q.reader
	q.reader = nil
	r.flush()
	r.newQuery()
	r.srv.start(r, q.rest)
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
func serveDatagram(h *Handler, ctx context.Context, w dns.ResponseWriter, b []byte) {
	if len(b) < dnsHeaderLen {
		return
	}
	req := new(dns.Msg)
	action := dns.DefaultMsgAcceptFunc(headerOf(b))
	switch action {
	case dns.MsgAccept:
		if req.Unpack(b) == nil {
			h.serve(ctx, w, req)
			return
		}
		action = dns.MsgReject
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		var header [dnsHeaderLen]byte
		unpackHeader(req, b, &header)
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

// unpackHeader sets m's header from the id and flags of b, a datagram at
// least 4 bytes long, as Unpack sets them, with every section empty: it
// unpacks those 4 bytes and zero counts, in buf.
func unpackHeader(m *dns.Msg, b []byte, buf *[dnsHeaderLen]byte) {
	*buf = [dnsHeaderLen]byte{}
	copy(buf[:4], b)
	_ = m.Unpack(buf[:])
}

// headerOf is the header at the start of b, at least dnsHeaderLen long.
func headerOf(b []byte) dns.Header {
	return dns.Header{
		Id: be16(b, 0), Bits: be16(b, 2), Qdcount: be16(b, 4), Ancount: be16(b, 6), Nscount: be16(b, 8), Arcount: be16(b, 10),
	}
}

// inlineQuery is the dns.ResponseWriter of a datagram a reader serves
// through ServeDNS: its reply joins the batch's, or, once the query has
// left the reader (leaveReader), is written alone.
type inlineQuery struct {
	reader *udpReader // nil once the query has left it.
	conn   *net.UDPConn
	remote net.Addr
	source []byte         // Control message naming the reply's source; nil: the socket's.
	rest   []ipv4.Message // The batch's datagrams after this one.
	// packedMissed: the fast path looked for this query's packed reply
	// (under the key the packed step would use) and found none current.
	// The packed step then keeps what is built without looking again: at
	// 100,000 names, a second probe that misses was an eighth of a miss.
	packedMissed bool
	// keyed holds the request when the datagram has a key: it leaves with
	// the query, as the request must.
	keyed keyedQuery
}

// tally is the reader's accounting while the query is served by it; nil
// once it has left, when the query counts into its pooled request's
// counter shard.
func (q *inlineQuery) tally() *readerTally {
	if q == nil || q.reader == nil {
		return nil
	}
	return &q.reader.tally
}

// begin makes q the next datagram's, from remote, served by r, before
// the rest of the batch; missed: the fast path looked for its packed
// reply. Field by field, so that keyed, which unpack sets afresh when it
// is used, is not cleared twice.
func (q *inlineQuery) begin(r *udpReader, remote net.Addr, source []byte, rest []ipv4.Message, missed bool) {
	q.reader, q.conn, q.remote, q.source, q.rest, q.packedMissed = r, r.conn, remote, source, rest, missed
}

// packedAnswer is cache.get(key, serial), through the reader's near
// slots while a reader with the fast path serves q: a query the fast
// path left (one with EDNS options, say) then takes no shared lock
// either when its reply is packed.
func (q *inlineQuery) packedAnswer(cache *packedAnswers, key answerKey, serial uint32) (packedAnswer, bool) {
	if q == nil || q.reader == nil || !q.reader.fast {
		return cache.get(key, serial)
	}
	return q.reader.near.get(cache, key, serial)
}

// lookedForPacked says whether the fast path looked for the packed reply
// to the query, and found none: false for a query a UDP reader did not
// read.
func (q *inlineQuery) lookedForPacked() bool { return q != nil && q.packedMissed }

func (q *inlineQuery) LocalAddr() net.Addr  { return q.conn.LocalAddr() }
func (q *inlineQuery) RemoteAddr() net.Addr { return q.remote }

func (q *inlineQuery) WriteMsg(m *dns.Msg) error {
	if r := q.reader; r != nil {
		// PackBuffer packs into the slice's length, not its capacity.
		slot := &r.out[r.pending]
		b, err := m.PackBuffer(slot.Buffers[0][:cap(slot.Buffers[0])])
		if err != nil {
			return err
		}
		q.queue(b)
		return nil
	}
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = q.Write(b)
	return err
}

func (q *inlineQuery) Write(b []byte) (int, error) {
	if q.reader != nil {
		q.queue(append(q.reader.out[q.reader.pending].Buffers[0][:0], b...))
		return len(b), nil
	}
	remote, _ := q.remote.(*net.UDPAddr)
	n, _, err := q.conn.WriteMsgUDP(b, q.source, remote)
	return n, err
}

// queue adds reply, in the reader's next reply buffer (or one grown from
// it), to the batch's replies.
func (q *inlineQuery) queue(reply []byte) {
	r := q.reader
	slot := &r.out[r.pending]
	slot.Buffers[0], slot.OOB, slot.Addr = reply, q.source, q.remote
	r.built[r.pending] = true
	r.pending++
}

func (q *inlineQuery) Close() error        { return nil }
func (q *inlineQuery) TsigStatus() error   { return nil }
func (q *inlineQuery) TsigTimersOnly(bool) {}
func (q *inlineQuery) Hijack()             {}
