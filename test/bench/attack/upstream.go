package main

import (
	"context"
	"errors"
	"net"

	"github.com/miekg/dns"
)

// blackhole is an upstream on loopback that reads every query and never
// answers, until ctx ends. It returns its address.
func blackhole(ctx context.Context, s *session) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		s.Fatal(err)
	}
	context.AfterFunc(ctx, func() { pc.Close() })
	go func() {
		buf := make([]byte, dns.MaxMsgSize)
		for {
			if _, _, err := pc.ReadFrom(buf); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// answering is an upstream on loopback that answers every query at once
// with NXDOMAIN, until ctx ends. It returns its address.
func answering(ctx context.Context, s *session) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		s.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		_ = w.WriteMsg(m.SetRcode(r, dns.RcodeNameError))
	})}
	context.AfterFunc(ctx, func() { _ = srv.Shutdown() })
	go func() { _ = srv.ActivateAndServe() }()
	return pc.LocalAddr().String()
}
