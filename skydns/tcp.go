package skydns

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skypod/skypod/internal/backoff"
)

// tcpWriteTimeout bounds one reply's write over TCP: a client that asks
// for a large answer and never reads must not hold its connection, its
// goroutine and the reply's buffers. (miekg/dns documents a WriteTimeout
// but does not apply it.)
const tcpWriteTimeout = 2 * time.Second

// tcpListener bounds what TCP clients can make skydns hold: at most a
// number of connections at once, a write deadline on every reply (a
// failed write ends the connection), and a pause after a failed accept,
// so that with descriptors exhausted the accept loop waits instead of
// spinning.
//
// At the limit a new connection takes the place of the one idle longest,
// as RFC 7766 (6.2.3) lets a server under pressure do: refusing the new
// one instead would let a client that keeps --tcp-max-conns idle
// connections open (reopening each as it times out) lock every other
// client out of TCP. A connection that is sending a query or receiving a
// reply is not idle; the newcomer is refused only if none is idle.
// Evicting scans the held connections, which happens only at the limit.
type tcpListener struct {
	net.Listener
	ctx      context.Context // Ends the pause at shutdown.
	maxConns int
	metrics  *Metrics
	// writeTimeout is tcpWriteTimeout; a field so tests can hold a write.
	writeTimeout time.Duration

	mu    sync.Mutex
	conns map[*tcpConn]struct{}

	retryMu sync.Mutex
	retry   backoff.Doubling
}

func newTCPListener(ctx context.Context, ln net.Listener, maxConns int, metrics *Metrics) *tcpListener {
	return &tcpListener{
		Listener: ln, ctx: ctx, maxConns: max(maxConns, 1), metrics: metrics, writeTimeout: tcpWriteTimeout,
		conns: make(map[*tcpConn]struct{}, maxConns),
		retry: backoff.Doubling{Min: 5 * time.Millisecond, Max: time.Second},
	}
}

// Accept returns the next connection there is room for.
func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.pause() // EMFILE and friends: the caller retries at once.
			}
			return nil, err
		}
		l.resetPause()
		if tc := l.admit(c); tc != nil {
			return tc, nil
		}
		l.metrics.tcpRefused.Inc()
		_ = c.Close()
	}
}

// admit registers c, first closing the connection idle longest when the
// limit is reached; nil when every held connection is busy.
func (l *tcpListener) admit(c net.Conn) *tcpConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.maxConns {
		victim := l.idlest()
		if victim == nil {
			return nil
		}
		delete(l.conns, victim) // Its slot is the newcomer's from now.
		_ = victim.Conn.Close() // Its server goroutine sees the close and ends.
		l.metrics.tcpEvicted.Inc()
		l.metrics.tcpConns.Dec()
	}
	tc := &tcpConn{Conn: c, owner: l}
	tc.touch()
	l.conns[tc] = struct{}{}
	l.metrics.tcpConns.Inc()
	return tc
}

// idlest is the held connection whose last read or write ended longest
// ago and that is in neither now; nil if all are busy.
func (l *tcpListener) idlest() *tcpConn {
	var victim *tcpConn
	var oldest int64
	for c := range l.conns {
		if c.busy.Load() > 0 {
			continue
		}
		if at := c.lastActive.Load(); victim == nil || at < oldest {
			victim, oldest = c, at
		}
	}
	return victim
}

// forget frees c's slot, unless an eviction already took it.
func (l *tcpListener) forget(c *tcpConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; ok {
		delete(l.conns, c)
		l.metrics.tcpConns.Dec()
	}
}

func (l *tcpListener) pause() {
	l.retryMu.Lock()
	defer l.retryMu.Unlock()
	l.retry.Wait(l.ctx)
}

func (l *tcpListener) resetPause() {
	l.retryMu.Lock()
	defer l.retryMu.Unlock()
	l.retry.Reset()
}

// tcpConn is one accepted connection: every write has a deadline and a
// failed write closes it; it notes when it was last active; closing it
// frees its slot once.
type tcpConn struct {
	net.Conn
	owner      *tcpListener
	lastActive atomic.Int64 // Unix nanoseconds of the last read or write's end.
	// busy counts writes in progress. A read needs no mark: miekg/dns
	// gives each query one read deadline, and a read that has received
	// bytes has just touched lastActive.
	busy atomic.Int32
	once sync.Once
}

func (c *tcpConn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

func (c *tcpConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.touch()
	}
	return n, err
}

// Write sends b within the listener's write timeout. A write that fails (the client
// stopped reading) closes the connection: miekg/dns would otherwise go on
// serving the connection's remaining pipelined queries, each waiting out
// its own deadline.
func (c *tcpConn) Write(b []byte) (int, error) {
	c.busy.Add(1)
	defer c.busy.Add(-1)
	if err := c.SetWriteDeadline(time.Now().Add(c.owner.writeTimeout)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(b)
	c.touch()
	if err != nil {
		_ = c.Close()
	}
	return n, err
}

func (c *tcpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.owner.forget(c) })
	return err
}
