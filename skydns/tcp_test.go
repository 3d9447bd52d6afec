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

// At the limit, one more connection is closed as soon as it is accepted,
// and counted; a closed connection frees its slot.
func TestTCPListenerLimitsConnections(t *testing.T) {
	l, metrics := newLimitedListener(t, 2)
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial(t, l.Addr().String())
	dial(t, l.Addr().String())
	held := []net.Conn{<-accepted, <-accepted}
	third := dial(t, l.Addr().String())
	_ = third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a third connection over the limit of 2 was not closed: %v", err)
	}
	if got := testutilCounter(metrics.tcpRefused); got != 1 {
		t.Fatalf("refused %v, want 1", got)
	}
	held[0].Close()
	dial(t, l.Addr().String())
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("a slot freed by a close was not reused")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A client that never reads cannot hold a reply's write: it ends at the
// deadline.
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
