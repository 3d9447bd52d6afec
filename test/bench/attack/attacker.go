package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// flood is a UDP attacker: workers sockets, each sending queries made by
// query, either at a fixed total rate (rate > 0: replies are read as they
// come) or one at a time (rate 0: the next query goes when the reply
// came or timeout passed).
type flood struct {
	workers int
	rate    int
	timeout time.Duration
	query   func(n int) []byte
}

// traffic is what an attacker sent and got back.
type traffic struct {
	sent, replies      atomic.Int64
	bytesOut, bytesIn  atomic.Int64
	maxReply           atomic.Int64
	tcpClosed, refused atomic.Int64 // Closed by skydns; dials that failed.
	tcpHeld            int          // skydns's TCP connections as the attack ends.
}

func (t *traffic) reply(n int) {
	t.replies.Add(1)
	t.bytesIn.Add(int64(n))
	for {
		old := t.maxReply.Load()
		if int64(n) <= old || t.maxReply.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}

func (t *traffic) send(n int) {
	t.sent.Add(1)
	t.bytesOut.Add(int64(n))
}

// run attacks addr until ctx ends.
func (f flood) run(ctx context.Context, s *session, addr string, t *traffic) {
	var wg sync.WaitGroup
	for w := range f.workers {
		conn, err := (&net.Dialer{}).DialContext(ctx, "udp", addr)
		if err != nil {
			s.Fatal(err)
		}
		context.AfterFunc(ctx, func() { conn.Close() })
		if f.rate > 0 {
			wg.Go(func() { f.paced(ctx, conn, w, float64(f.rate)/float64(f.workers), t) })
			wg.Go(func() { readAll(conn, t) })
		} else {
			wg.Go(func() { f.lockstep(ctx, conn, w, t) })
		}
	}
	wg.Wait()
}

// paced sends at rate queries per second, counting from the start: a
// sender that was not scheduled in time catches up, so the average holds
// on a busy machine.
func (f flood) paced(ctx context.Context, conn net.Conn, w int, rate float64, t *traffic) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start, n := time.Now(), w
	for sent := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for due := int(time.Since(start).Seconds() * rate); sent < due; sent++ {
			q := f.query(n)
			n += f.workers
			if _, err := conn.Write(q); err == nil {
				t.send(len(q))
			}
		}
	}
}

// readAll counts replies until conn is closed.
func readAll(conn net.Conn, t *traffic) {
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := conn.Read(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			t.reply(n)
		}
	}
}

// lockstep sends a query, waits for its reply or the timeout, and again.
func (f flood) lockstep(ctx context.Context, conn net.Conn, w int, t *traffic) {
	buf := make([]byte, dns.MaxMsgSize)
	for n := w; ctx.Err() == nil; n += f.workers {
		q := f.query(n)
		if _, err := conn.Write(q); err != nil {
			continue
		}
		t.send(len(q))
		_ = conn.SetReadDeadline(time.Now().Add(f.timeout))
		if r, err := conn.Read(buf); err == nil {
			t.reply(r)
		}
	}
}

// packed is a query for name and qtype with an EDNS0 buffer of bufsize
// (none when 0) and the given opcode.
func packed(name string, qtype uint16, bufsize uint16, opcode int) []byte {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(name), qtype)
	m.Opcode = opcode
	if bufsize > 0 {
		m.SetEdns0(bufsize, false)
	}
	b, err := m.Pack()
	if err != nil {
		panic(err) // Every name here is well formed.
	}
	return b
}
