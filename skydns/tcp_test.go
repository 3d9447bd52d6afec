package skydns

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newLimitedListener(t *testing.T, maxConns int) (*tcpListener, *Metrics) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	metrics := NewMetrics(prometheus.NewRegistry(), nil)
	return newTCPListener(t.Context(), ln, maxConns, metrics), metrics
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// acceptAll accepts on l until it is closed, handing each connection
// over.
func acceptAll(l *tcpListener) <-chan net.Conn {
	accepted := make(chan net.Conn, 4)
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

// closedByServer reports whether the server closed c, waiting for it.
func closedByServer(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

// At the limit, a new connection takes the place of the one idle
// longest, counted; a closed connection frees its slot.
func TestTCPListenerEvictsTheIdlestAtTheLimit(t *testing.T) {
	l, metrics := newLimitedListener(t, 2)
	accepted := acceptAll(l)
	first := dial(t, l.Addr().String())
	<-accepted
	second := dial(t, l.Addr().String())
	held := <-accepted
	dial(t, l.Addr().String())
	<-accepted
	if !closedByServer(first) {
		t.Fatal("the connection idle longest was not closed for the newcomer")
	}
	if got := testutilCounter(metrics.tcpEvicted); got != 1 || promGauge(metrics.tcpConns) != 2 {
		t.Fatalf("evicted %v, open %v; want 1 and 2", got, promGauge(metrics.tcpConns))
	}
	held.Close()
	if !closedByServer(second) || promGauge(metrics.tcpConns) != 1 {
		t.Fatalf("a close did not free its slot: %v open", promGauge(metrics.tcpConns))
	}
}

// A connection in the middle of a write is not idle: with every slot
// held by one, a newcomer is closed at once, and counted.
func TestTCPListenerRefusesWhenNoneIsIdle(t *testing.T) {
	l, metrics := newLimitedListener(t, 1)
	l.writeTimeout = time.Minute // The write below holds until the test ends.
	accepted := acceptAll(l)
	dial(t, l.Addr().String()) // Never reads.
	server := (<-accepted).(*tcpConn)
	go func() { _, _ = server.Write(make([]byte, 64<<20)) }()
	t.Cleanup(func() { server.Close() })
	for server.busy.Load() == 0 {
		time.Sleep(time.Millisecond) // Until the write has begun: it then lasts.
	}
	if !closedByServer(dial(t, l.Addr().String())) {
		t.Fatal("a connection over the limit was not closed")
	}
	if got := testutilCounter(metrics.tcpRefused); got != 1 {
		t.Fatalf("refused %v, want 1", got)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A client that never reads cannot hold a reply's write: it ends at the
// deadline, and so does the connection (miekg/dns would otherwise serve its
// remaining pipelined queries, each waiting out a deadline).
func TestTCPWritesHaveADeadline(t *testing.T) {
	l, _ := newLimitedListener(t, 1)
	dial(t, l.Addr().String()) // Never reads.
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := server.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		if !isTimeout(err) {
			t.Fatalf("write ended with %v, want its deadline", err)
		}
	case <-time.After(tcpWriteTimeout + 10*time.Second):
		t.Fatal("a write to a client that never reads did not end")
	}
	// The failed write ended the connection: its slot is free.
	if _, err := server.Write([]byte("x")); err == nil {
		t.Fatal("the connection still writes after a failed write")
	}
}

// failingListener fails every Accept, as one does with descriptors gone.
type failingListener struct {
	net.Listener
	calls int
}

func (f *failingListener) Accept() (net.Conn, error) {
	f.calls++
	return nil, errors.New("accept: too many open files")
}

// A failing accept pauses, doubling, before it returns: the accept loop
// that retries at once cannot spin.
func TestTCPListenerPausesAfterAFailedAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	failing := &failingListener{Listener: ln}
	l := newTCPListener(t.Context(), failing, 1, NewMetrics(prometheus.NewRegistry(), nil))
	start := time.Now()
	for range 5 {
		if _, err := l.Accept(); err == nil {
			t.Fatal("no error from a failing accept")
		}
	}
	// 5 + 10 + 20 + 40 + 80 ms at the least; a slow machine only adds.
	if elapsed := time.Since(start); elapsed < 155*time.Millisecond {
		t.Fatalf("5 failed accepts took %v: the loop would spin", elapsed)
	}
}
