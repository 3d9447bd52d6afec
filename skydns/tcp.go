package skydns

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/skypod/skypod/internal/backoff"
)

// tcpWriteTimeout bounds one reply's write over TCP: a client that asks
// for a large answer and never reads must not hold its connection, its
// goroutine and the reply's buffers. (miekg/dns documents a WriteTimeout
// but does not apply it.)
const tcpWriteTimeout = 2 * time.Second

// tcpListener bounds what TCP clients can make skydns hold: at most a
// number of connections at once (one more is closed as soon as it is
// accepted, and counted), a write deadline on every reply, and a pause
// after a failed accept, so that with descriptors exhausted the accept
// loop waits instead of spinning.
type tcpListener struct {
	net.Listener
	ctx     context.Context // Ends the pause at shutdown.
	slots   chan struct{}
	metrics *Metrics

	retryMu sync.Mutex
	retry   backoff.Doubling
}

func newTCPListener(ctx context.Context, ln net.Listener, maxConns int, metrics *Metrics) *tcpListener {
	return &tcpListener{
		Listener: ln, ctx: ctx, slots: make(chan struct{}, maxConns), metrics: metrics,
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
		select {
		case l.slots <- struct{}{}:
			l.metrics.tcpConns.Inc()
			return &tcpConn{Conn: c, release: l.release}, nil
		default:
			l.metrics.tcpRefused.Inc()
			_ = c.Close()
		}
	}
}

func (l *tcpListener) release() {
	<-l.slots
	l.metrics.tcpConns.Dec()
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

// tcpConn is one accepted connection: every write has a deadline, and
// closing it frees its slot once.
type tcpConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *tcpConn) Write(b []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(tcpWriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *tcpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
