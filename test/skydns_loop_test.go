//go:build integration

// skydns forwarding to itself (issue #9), through its binary: a loop
// through another resolver, found by the loop probe at run time (refused
// self nameservers are among the bad flags in skydns_test.go).

package test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/harness"
)

// startRelay is a resolver that sends every query it gets on to target and
// the reply back, as a node resolver pointed at the cluster DNS IP would:
// skydns forwarding to it, from target, is a loop. relayed counts queries.
func startRelay(t *testing.T, target string) (addr string, relayed *atomic.Int32) {
	t.Helper()
	relayed = new(atomic.Int32)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		relayed.Add(1)
		if m, _, err := c.ExchangeContext(ctx, r, target); err == nil {
			_ = w.WriteMsg(m)
		}
	})
	srv := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: handler}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ListenAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return srv.PacketConn.LocalAddr().String(), relayed
}

// A loop through another resolver: the probe comes back, skydns logs one
// error line naming the nameserver and sets the gauge; then a burst of
// names outside the domain is SERVFAIL at once with nothing sent on, the
// goroutines stay few, and names in the domain are answered.
func TestForwardingLoopThroughTheBinary(t *testing.T) {
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), svcKey, svcVal)
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	relay, relayed := startRelay(t, addr)
	s := startSkydns(t, etcd.URL, "-addr="+addr, "-nameservers="+relay, "-rtimeout=5s")
	harness.Eventually(t, 30*time.Second, "the loop found", func() error {
		if err := s.metricIs(t, "skydns_forward_loop_detected", "1"); err != nil {
			return err
		}
		return nil
	})
	if lines := loopLines(s.Log()); len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], "nameserver="+relay) {
		t.Fatalf("want one error line naming %s, got %q", relay, lines)
	}
	sent := relayed.Load()
	burstOfForwardedNames(t, s.Addr, 50)
	if n := relayed.Load(); n != sent {
		t.Fatalf("%d queries relayed after the loop was found", n-sent)
	}
	if v := s.metric(t, `skydns_forward_requests_total{kind="recursive",result="loop"}`); v != "50" {
		t.Fatalf("loop refusals counted %q, want 50", v)
	}
	if v, err := strconv.Atoi(s.metric(t, "go_goroutines")); err != nil || v > 100 {
		t.Fatalf("go_goroutines %d (%v): the loop still multiplies", v, err)
	}
	if err := s.answersTestService("udp"); err != nil {
		t.Fatalf("an in-zone query after the loop was found: %v", err)
	}
}

// The probe stops with the server: with a probe held by a nameserver that
// never answers, SIGTERM still ends skydns at once, not after -rtimeout.
func TestLoopProbeStopsAtShutdown(t *testing.T) {
	var probes atomic.Int32
	blackHole := startBlackHole(t, func(m *dns.Msg) {
		if m.Question[0].Qtype == dns.TypeHINFO {
			probes.Add(1)
		}
	})
	etcd := harness.StartEtcd(t)
	s := startSkydns(t, etcd.URL, "-nameservers="+blackHole, "-rtimeout=60s")
	harness.Eventually(t, 10*time.Second, "the probe held upstream", func() error {
		if probes.Load() == 0 {
			return fmt.Errorf("no probe yet")
		}
		return nil
	})
	if err := s.Stop(10 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM with the probe held: %v", err)
	}
	if !strings.Contains(s.Log(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", s.Log())
	}
}

// startBlackHole is a nameserver on loopback that reads every query and
// answers none; each query that unpacks is passed to seen. It stops with
// the test.
func startBlackHole(t *testing.T, seen func(*dns.Msg)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if m := new(dns.Msg); m.Unpack(buf[:n]) == nil && len(m.Question) == 1 {
				seen(m)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// loopLines are the log lines about the forwarding loop.
func loopLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "forwarding loop") {
			out = append(out, line)
		}
	}
	return out
}

// burstOfForwardedNames sends n names outside the domain at once; each
// must be SERVFAIL well within the read timeout, which a query sent
// upstream would wait out.
func burstOfForwardedNames(t *testing.T, addr string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			m, err := harness.Exchange(addr, "udp", fmt.Sprintf("name%d.example.org.", i), dns.TypeA)
			if err := harness.WantRcode(m, err, dns.RcodeServerFailure); err != nil {
				errs <- err
			} else if d := time.Since(start); d > 2*time.Second {
				errs <- fmt.Errorf("SERVFAIL after %s", d)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a name outside the domain after the loop was found: %v", err)
	}
}
