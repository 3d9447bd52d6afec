package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// slowReaders are TCP clients that each pipeline queries for a large
// answer and never read: once the replies fill the socket buffers (about
// 4 MiB on Linux), skydns's writes block.
type slowReaders struct {
	clients, queries int
	query            []byte
}

func (a slowReaders) run(ctx context.Context, s *session, addr string, t *traffic) {
	var wg sync.WaitGroup
	for range a.clients {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			s.Fatal(err)
		}
		_ = conn.(*net.TCPConn).SetReadBuffer(4096)
		wg.Go(func() {
			defer conn.Close()
			// Writes block once skydns stops reading: the end unblocks them.
			stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Now()) })
			defer stop()
			frame := binary.BigEndian.AppendUint16(nil, uint16(len(a.query)))
			frame = append(frame, a.query...)
			for range a.queries {
				if _, err := conn.Write(frame); err != nil {
					break
				}
				t.send(len(frame))
			}
			<-ctx.Done()
		})
	}
	wg.Wait()
}

// connFlood keeps conns idle TCP connections open, opening a new one
// whenever skydns closes one (counted in tcpClosed; a failed dial in
// refused).
type connFlood struct{ conns int }

func (a connFlood) run(ctx context.Context, _ *session, addr string, t *traffic) {
	var wg sync.WaitGroup
	for range a.conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				a.hold(ctx, addr, t)
			}
		})
	}
	wg.Wait()
}

// hold opens one connection and waits until skydns closes it or ctx ends.
func (connFlood) hold(ctx context.Context, addr string, t *traffic) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() == nil {
			t.refused.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
		return
	}
	t.send(0)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_, err = io.Copy(io.Discard, conn)
	if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		t.tcpClosed.Add(1)
	}
	conn.Close()
}

// largeQuery asks for name over TCP, where no buffer size limits the reply.
func largeQuery(name string) []byte { return packed(name, dns.TypeA, dns.MaxMsgSize, dns.OpcodeQuery) }
