package skydns

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestScreenNameservers(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}
	tests := []struct {
		name        string
		listen      []string
		nameservers []string
		resolvConf  bool
		keep, self  []string
		fails       bool
	}{
		{"the same address", []string{"127.0.0.1:53"}, []string{"127.0.0.1:53"}, false, nil, nil, true},
		{"another loopback IP is another socket", []string{"127.0.0.1:53"}, []string{"127.0.0.53:53"}, false, []string{"127.0.0.53:53"}, nil, false},
		{"another port", []string{"0.0.0.0:53"}, []string{"127.0.0.1:5353"}, false, []string{"127.0.0.1:5353"}, nil, false},
		{"any loopback IP under 0.0.0.0", []string{"0.0.0.0:53"}, []string{"127.0.0.53:53"}, false, nil, nil, true},
		{"::1 under 0.0.0.0 (Go listens dual-stack)", []string{"0.0.0.0:53"}, []string{"[::1]:53"}, false, nil, nil, true},
		{"127.0.0.1 under ::", []string{"[::]:53"}, []string{"127.0.0.1:53"}, false, nil, nil, true},
		{"an interface address under 0.0.0.0", []string{"0.0.0.0:53"}, []string{"10.0.0.5:53"}, false, nil, nil, true},
		{"an IPv6 interface address under ::", []string{"[::]:53"}, []string{"[fd00::5]:53"}, false, nil, nil, true},
		{"another host under 0.0.0.0", []string{"0.0.0.0:53"}, []string{"10.0.0.6:53"}, false, []string{"10.0.0.6:53"}, nil, false},
		{"loopback is not a specific non-loopback listen IP", []string{"10.0.0.5:53"}, []string{"127.0.0.1:53"}, false, []string{"127.0.0.1:53"}, nil, false},
		{"an IPv4-mapped IPv6 address", []string{"127.0.0.1:53"}, []string{"[::ffff:127.0.0.1]:53"}, false, nil, nil, true},
		{"from resolv.conf: dropped, the rest kept", []string{"0.0.0.0:53"}, []string{"127.0.0.53:53", "192.0.2.1:53"}, true,
			[]string{"192.0.2.1:53"}, []string{"127.0.0.53:53"}, false},
		{"from resolv.conf: all dropped", []string{"0.0.0.0:53", "0.0.0.0:53"}, []string{"127.0.0.53:53", "[::1]:53"}, true,
			nil, []string{"127.0.0.53:53", "[::1]:53"}, false},
		{"the TCP socket counts as the UDP one", []string{"192.0.2.9:5300", "192.0.2.9:5301"}, []string{"192.0.2.9:5301"}, false, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var listen []netip.AddrPort
			for _, l := range tc.listen {
				listen = append(listen, netip.MustParseAddrPort(l))
			}
			keep, self, err := screenNameservers(tc.nameservers, tc.resolvConf, listen, local)
			if tc.fails {
				if err == nil || !strings.Contains(err.Error(), "own address") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("want a one-line error, got %v (keep %v)", err, keep)
				}
				return
			}
			if err != nil || !slices.Equal(keep, tc.keep) || !slices.Equal(self, tc.self) {
				t.Fatalf("keep %v self %v err %v, want %v %v", keep, self, err, tc.keep, tc.self)
			}
		})
	}
}

// Finish refuses explicit nameservers that are skydns itself; with
// -no-rec they are never used, and with --systemd the sockets are not
// known yet (Run checks them).
func TestFinishRefusesSelfNameservers(t *testing.T) {
	if _, err := parse(t, nil, "--addr=127.0.0.1:5300", "--nameservers=192.0.2.1:53,127.0.0.1:5300"); err == nil ||
		!strings.HasPrefix(err.Error(), "--nameservers: 127.0.0.1:5300 is skydns's own address") {
		t.Fatalf("got %v", err)
	}
	env := map[string]string{"SKYDNS_NAMESERVERS": "127.0.0.2:53"}
	if _, err := parse(t, env, "--addr=0.0.0.0:53"); err == nil {
		t.Fatal("SKYDNS_NAMESERVERS on loopback under 0.0.0.0:53 accepted")
	}
	for _, extra := range []string{"--no-rec", "--systemd"} {
		if _, err := parse(t, nil, "--addr=127.0.0.1:5300", "--nameservers=127.0.0.1:5300", extra); err != nil {
			t.Fatalf("%s: %v", extra, err)
		}
	}
}

// Once the sockets are bound, resolv.conf nameservers that are skydns are
// dropped with one warning; with none left nothing is forwarded.
func TestScreenListenedDropsResolvConfSelf(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	addrs := []net.Addr{&net.UDPAddr{IP: net.IPv6unspecified, Port: 53}, &net.TCPAddr{IP: net.IPv6unspecified, Port: 53}}
	fwd, err := screenListened(ForwardOptions{Nameservers: []string{"127.0.0.53:53"}, FromResolvConf: true}, addrs, log)
	if err != nil || len(fwd.Nameservers) != 0 || strings.Count(logs.String(), "\n") != 1 ||
		!strings.Contains(logs.String(), "dropped=[127.0.0.53:53]") || !strings.Contains(logs.String(), "forwarding=false") {
		t.Fatalf("nameservers %v err %v log %q", fwd.Nameservers, err, logs.String())
	}
	if _, err := screenListened(ForwardOptions{Nameservers: []string{"[::1]:53"}}, addrs, log); err == nil {
		t.Fatal("an explicit nameserver that is skydns accepted")
	}
}

// exchangerFunc adapts a function to Exchanger.
type exchangerFunc func(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error)

func (f exchangerFunc) Exchange(ctx context.Context, m *dns.Msg, network, addr string) (*dns.Msg, error) {
	return f(ctx, m, network, addr)
}

// loopHandler is a handler whose every upstream query comes straight back
// to it, as through a resolver that forwards to skydns; sent counts them.
func loopHandler(t *testing.T, logs *bytes.Buffer) (h *Handler, sent *atomic.Int32) {
	sent = new(atomic.Int32)
	back := exchangerFunc(func(_ context.Context, m *dns.Msg, _, _ string) (*dns.Msg, error) {
		sent.Add(1)
		w := &packingWriter{}
		h.ServeDNS(w, m)
		if w.buf == nil {
			return nil, errors.New("dropped")
		}
		r := new(dns.Msg)
		return r, r.Unpack(w.buf)
	})
	h = newTestHandler(t, newTestConfig(), loadIndex(t, testRecords), func(d *Deps) {
		d.Exchange = back
		d.Log = slog.New(slog.NewTextHandler(logs, nil))
	})
	return h, sent
}

// A probe that comes back is a loop: one error line naming the nameserver,
// the gauge, and from then on names outside the domain are SERVFAIL at
// once, counted, with nothing sent; names inside are answered.
func TestLoopProbeFindsLoop(t *testing.T) {
	var logs bytes.Buffer
	h, sent := loopHandler(t, &logs)
	done := make(chan struct{})
	go func() { h.probeLoops(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the probe did not return")
	}
	if !h.caches.loop.detected() || promGauge(h.metrics.loopDetected) != 1 || sent.Load() != 1 {
		t.Fatalf("detected %v gauge %v, %d sent", h.caches.loop.detected(), promGauge(h.metrics.loopDetected), sent.Load())
	}
	if strings.Count(logs.String(), "level=ERROR") != 1 || !strings.Contains(logs.String(), "nameserver="+placeholderUpstream) {
		t.Fatalf("log: %q", logs.String())
	}
	if m := query(t, h, "www.example.com.", dns.TypeA); m.Rcode != dns.RcodeServerFailure || sent.Load() != 1 {
		t.Fatalf("forwarded after the loop: %v, %d sent", m, sent.Load())
	}
	if got := testutilCounter(h.metrics.forwards.WithLabelValues("recursive", "loop")); got != 1 {
		t.Fatalf("loop forwards counted %v", got)
	}
	if m := query(t, h, "testservice.default.svc.skydns.test.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
		t.Fatalf("in-zone name after the loop: %v", m)
	}
}

// The probe step answers only the guard's own names, and only HINFO; the
// same name again logs nothing more.
func TestLoopStepAnswersOnlyProbes(t *testing.T) {
	var logs bytes.Buffer
	h := newTestHandler(t, newTestConfig(), loadIndex(t, testRecords), func(d *Deps) { d.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	probe := h.caches.loop.probes[0].name
	if m := query(t, h, "12.34.", dns.TypeHINFO); m.Rcode != dns.RcodeNameError || h.caches.loop.detected() {
		t.Fatalf("another HINFO name: %v", m)
	}
	if m := query(t, h, probe, dns.TypeA); m.Rcode != dns.RcodeNameError || h.caches.loop.detected() {
		t.Fatalf("the probe name as A: %v", m)
	}
	for range 2 {
		if m := query(t, h, probe, dns.TypeHINFO); m.Rcode != dns.RcodeRefused {
			t.Fatalf("the probe: %v", m)
		}
	}
	if !h.caches.loop.detected() || strings.Count(logs.String(), "level=ERROR") != 1 {
		t.Fatalf("detected %v, log %q", h.caches.loop.detected(), logs.String())
	}
}

// Without a loop the probe stops after its rounds of answers; it stops
// too when its context ends while an exchange waits; and there is none
// with --loop-detect=false.
func TestLoopProbeEnds(t *testing.T) {
	var sent atomic.Int32
	answer := exchangerFunc(func(ctx context.Context, m *dns.Msg, _, _ string) (*dns.Msg, error) {
		sent.Add(1)
		return new(dns.Msg).SetRcode(m, dns.RcodeNameError), nil
	})
	h := newTestHandler(t, newTestConfig(), loadIndex(t, testRecords), func(d *Deps) { d.Exchange = answer })
	h.caches.loop.interval = time.Millisecond
	h.probeLoops(context.Background())
	if h.caches.loop.detected() || sent.Load() != probeRounds {
		t.Fatalf("detected %v, %d probes sent", h.caches.loop.detected(), sent.Load())
	}

	hang := exchangerFunc(func(ctx context.Context, _ *dns.Msg, _, _ string) (*dns.Msg, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	h = newTestHandler(t, newTestConfig(), loadIndex(t, testRecords), func(d *Deps) { d.Exchange = hang })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	h.probeLoops(ctx) // Returns: the test would time out otherwise.

	cfg := newTestConfig()
	cfg.LoopDetect = false
	if h := newTestHandler(t, cfg, loadIndex(t, testRecords)); h.caches.loop != nil {
		t.Fatal("a loop guard with --loop-detect=false")
	}
}

// An exchange stops when its context ends, not at the read timeout: at
// shutdown the loop probe, like any upstream query, must not wait out a
// nameserver that never answers.
func TestExchangeStopsWithContext(t *testing.T) {
	blackHole, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer blackHole.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = newNetExchanger(time.Minute).Exchange(ctx, new(dns.Msg).SetQuestion("example.org.", dns.TypeA), "udp", blackHole.LocalAddr().String())
	if !errors.Is(err, context.Canceled) || time.Since(start) > 30*time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
}
