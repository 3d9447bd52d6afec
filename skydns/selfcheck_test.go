package skydns

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/internal/httpserve"
)

// serveUDP serves h on a loopback UDP socket until the test ends.
func serveUDP(t *testing.T, h dns.Handler) net.Addr {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: h}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr()
}

// healthz asks /healthz as the kubelet would, through the handler opsMux uses.
func healthz(t *testing.T, s *selfCheck) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	httpserve.StatusHandler(s.Status)(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	return rec.Code, rec.Body.String()
}

// The real query chain with no records loaded (etcd never answered): it
// still answers its own CHAOS query, so /healthz is 200.
func TestSelfCheckPassesWhileTheServerAnswers(t *testing.T) {
	h := newTestHandler(t, newTestConfig(), NewIndex("/skydns"))
	s := newSelfCheck(serveUDP(t, h))
	if code, body := healthz(t, s); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz = %d %q, want 200 ok", code, body)
	}
}

// A socket that is bound but not read (a DNS server whose read loop is
// stuck, while the HTTP server is fine): /healthz is 503 within the
// timeout and says why.
func TestSelfCheckFailsWhenTheServerDoesNotAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := newSelfCheck(pc.LocalAddr())
	s.timeout = 200 * time.Millisecond
	code, body := healthz(t, s)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "does not answer") {
		t.Fatalf("/healthz = %d %q, want 503 saying the server does not answer", code, body)
	}
}

// Something answers, but not as skydns's chaos step does (another server
// on the port, or a chain that fails every query): not healthy.
func TestSelfCheckWantsTheChaosAnswer(t *testing.T) {
	addr := serveUDP(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		_ = w.WriteMsg(m.SetRcode(r, dns.RcodeServerFailure))
	}))
	if code, body := healthz(t, newSelfCheck(addr)); code != http.StatusServiceUnavailable || !strings.Contains(body, "SERVFAIL") {
		t.Fatalf("/healthz = %d %q, want 503 naming SERVFAIL", code, body)
	}
}

// However often /healthz is asked, one query per cacheFor reaches DNS.
func TestSelfCheckAsksAtMostOncePerInterval(t *testing.T) {
	var queries atomic.Int32
	addr := serveUDP(t, dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		queries.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "id.server.", Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}, Txt: []string{"x"}}}
		_ = w.WriteMsg(m)
	}))
	now := time.Unix(0, 0)
	s := newSelfCheck(addr)
	s.now = func() time.Time { return now }
	for range 5 {
		if ok, detail := s.Status(context.Background()); !ok {
			t.Fatal(detail)
		}
	}
	now = now.Add(s.cacheFor)
	s.Status(context.Background())
	if n := queries.Load(); n != 2 {
		t.Fatalf("%d queries, want 2 (one, then one after cacheFor)", n)
	}
}

func TestSelfCheckSendsToLoopbackForAWildcardBind(t *testing.T) {
	for bound, want := range map[string]string{
		"0.0.0.0:53": "127.0.0.1:53", "[::]:53": "[::1]:53", "10.0.0.10:53": "10.0.0.10:53", "127.0.0.1:1053": "127.0.0.1:1053",
	} {
		addr, err := net.ResolveUDPAddr("udp", bound)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialable(addr); got != want {
			t.Errorf("dialable(%s) = %s, want %s", bound, got, want)
		}
	}
}
