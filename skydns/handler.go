package skydns

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Handler is where a query enters from the sockets: it notes the
// transport and the time, runs the chain (chain.go), writes what the chain
// returns and accounts for it. It makes no decision about the answer.
type Handler struct {
	chain    step
	base     context.Context // Ends when the server shuts down.
	caches   caches
	metrics  *Metrics
	log      *slog.Logger
	clock    func() time.Time
	buffers  sync.Pool // *[]byte scratch to give a shared packed reply its id.
	requests sync.Pool // *request, one per query in flight.
}

// Deps are the handler's ties to the world outside the process, given to
// NewHandler so tests can stand in for them.
type Deps struct {
	Index    *Index
	Metrics  *Metrics
	Log      *slog.Logger
	Clock    func() time.Time // nil: time.Now.
	Exchange Exchanger        // nil: real UDP and TCP clients.
	// Context ends with the server: upstream work of queries in flight
	// stops then, so shutdown does not wait out their deadlines. nil:
	// context.Background().
	Context context.Context
}

// NewHandler builds the chain from opts and deps.
func NewHandler(opts Options, deps Deps) *Handler {
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Exchange == nil {
		deps.Exchange = newNetExchanger(opts.Forward.Timeout)
	}
	if deps.Context == nil {
		deps.Context = context.Background()
	}
	h := &Handler{
		metrics: deps.Metrics, log: deps.Log, clock: deps.Clock, base: deps.Context,
		buffers:  sync.Pool{New: func() any { b := make([]byte, 0, dns.MinMsgSize); return &b }},
		requests: sync.Pool{New: func() any { return &request{shard: deps.Metrics.nextShard()} }},
	}
	h.chain, h.caches = newChain(opts, deps)
	return h
}

// ServeDNS implements dns.Handler. miekg/dns gives a handler no context:
// the server's own stands in, and the chain's upstream steps set their
// deadlines below it.
func (h *Handler) ServeDNS(w dns.ResponseWriter, m *dns.Msg) { h.serve(h.base, w, m) }

// serve is ServeDNS within ctx, which the UDP readers give the queries
// they serve themselves (udp.go, leaveReader).
func (h *Handler) serve(ctx context.Context, w dns.ResponseWriter, m *dns.Msg) {
	client := w.RemoteAddr()
	_, tcp := client.(*net.TCPAddr)
	// From a pool: a pointer passed through the chain's interface calls
	// would otherwise be allocated anew for each query.
	req := h.requests.Get().(*request)
	req.reset(m, tcp, h.clock())
	req.client = client
	req.inline, _ = w.(*inlineQuery)
	if len(m.Question) == 1 {
		req.countRequest(req.q().Qtype)
	}
	h.chain.serve(ctx, req)
	h.send(w, req, &req.reply)
	h.requests.Put(req) // Nothing in the chain keeps it past its reply; reset clears it for the next.
}

// send writes the reply, or counts a drop when the chain chose not to
// answer.
func (h *Handler) send(w dns.ResponseWriter, req *request, r *reply) {
	var err error
	switch {
	case r.wire != nil && r.shared:
		err = h.writeShared(w, req.msg.Id, r)
	case r.wire != nil:
		_, err = w.Write(r.wire) // Built for this request: it has its id.
	case r.msg != nil:
		err = w.WriteMsg(r.msg)
	default:
		h.metrics.dropped.Inc()
		return
	}
	if err != nil {
		h.log.Debug("write reply", "err", err)
	}
	h.account(req, r)
}

// writeShared sends a packed reply that other requests share with this
// request's id and, under round robin, its answers in an order of its own.
// The shared bytes are never written to: both go into a pooled copy.
func (h *Handler) writeShared(w dns.ResponseWriter, id uint16, r *reply) error {
	bp := h.buffers.Get().(*[]byte)
	b := append((*bp)[:0], r.wire...)
	binary.BigEndian.PutUint16(b, id)
	r.answers.shuffle(b)
	_, err := w.Write(b)
	*bp = b
	h.buffers.Put(bp)
	return err
}

// account records a sent reply in the metrics and, at debug level, the log.
func (h *Handler) account(req *request, r *reply) {
	rcode, answers := r.summary()
	seconds := time.Since(req.start).Seconds()
	if !req.countResponse(rcode, seconds) {
		h.metrics.response(req.proto(), rcode, seconds)
	}
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.logQuery(req, rcode, answers)
	}
}

// logQuery is out of line to keep the frame of account, on every query's
// path, small.
//
//go:noinline
func (h *Handler) logQuery(req *request, rcode, answers int) {
	h.log.Debug("query", "name", req.q().Name, "type", dns.TypeToString[req.q().Qtype], "proto", req.proto(),
		"rcode", dns.RcodeToString[rcode], "answers", answers, "seconds", time.Since(req.start).Seconds())
}

// PackedEntries is the number of packed replies held, current or stale.
func (h *Handler) PackedEntries() int { return h.caches.packed.Len() }
