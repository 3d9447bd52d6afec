//go:build integration

package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/test/harness"
)

// stalls is how many times, and stall how long, etcd is paused: each
// stall also lasts until kube2sky has said etcd is unreachable, so every
// one is an outage the probes saw.
const (
	stalls    = 4
	stallHold = 3 * time.Second
)

// Four etcd stalls while every probe is polled every 100 ms and skydns is
// queried: no poll fails and every query is answered. kube2sky's
// /readiness stays 200 (its body says etcd is unreachable), skydns's /ready
// stays 200 (stale, from its index), and both /healthz stay 200: an etcd
// blip takes no pod that answers out of its Service and restarts nothing.
func TestProbesHoldThroughEtcdStalls(t *testing.T) {
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	pod := startDNSPod(t, cluster)
	ns := "probes"
	createNamespace(t, cluster.Admin, ns)
	svc := must(cluster.Admin.CoreV1().Services(ns).Create(context.Background(), &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}},
	}, metav1.CreateOptions{}))(t)
	name := "web." + ns + ".svc.cluster.local."
	pod.expect(t, "NOERROR", []string{"A " + svc.Spec.ClusterIP}, name, "A")

	poll := newProbePoller(pod, name, svc.Spec.ClusterIP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { poll.run(done) })
	for i := range stalls {
		pod.etcd.Pause()
		stalled := time.Now()
		harness.Eventually(t, 20*time.Second, fmt.Sprintf("stall %d: kube2sky says etcd is unreachable", i), func() error {
			return wantBody(pod.healthz+"/readiness", "etcd unreachable")
		})
		time.Sleep(time.Until(stalled.Add(stallHold))) // The stall's length, not a wait for absence.
		pod.etcd.Resume()
		harness.Eventually(t, 30*time.Second, fmt.Sprintf("stall %d: kube2sky and skydns back to ok", i), func() error {
			if err := wantBody(pod.healthz+"/readiness", "ok\n"); err != nil {
				return err
			}
			return wantBody(pod.skydns.Metrics+"/ready", "ok\n")
		})
	}
	close(done)
	wg.Wait()
	poll.report(t)
}

// wantBody is nil when url answers 200 with a body that contains want.
func wantBody(url, want string) error {
	code, body, err := harness.HTTPGet(url)
	if err != nil || code != 200 || !strings.Contains(body, want) {
		return fmt.Errorf("%s: %d %q %v, want 200 with %q", url, code, body, err, want)
	}
	return nil
}

// probePoller asks every probe and one DNS question every 100 ms and
// keeps what failed.
type probePoller struct {
	urls     []string
	dnsAddr  string
	name, ip string

	mu       sync.Mutex
	polls    int
	queries  int
	failures []string
}

func newProbePoller(pod *dnsPod, name, ip string) *probePoller {
	return &probePoller{
		urls:    []string{pod.healthz + "/readiness", pod.healthz + "/healthz", pod.skydns.Metrics + "/ready", pod.skydns.Metrics + "/healthz"},
		dnsAddr: pod.skydns.Addr, name: name, ip: ip,
	}
}

func (p *probePoller) run(done <-chan struct{}) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			p.once()
		}
	}
}

func (p *probePoller) once() {
	for _, url := range p.urls {
		code, body, err := harness.HTTPGet(url)
		p.note(true, code == 200, fmt.Sprintf("%s: %d %q %v", url, code, body, err))
	}
	m, err := harness.Exchange(p.dnsAddr, "udp", p.name, dns.TypeA)
	ok := err == nil && m.Rcode == dns.RcodeSuccess && len(m.Answer) == 1
	if ok {
		a, isA := m.Answer[0].(*dns.A)
		ok = isA && a.A.String() == p.ip
	}
	p.note(false, ok, fmt.Sprintf("%s A: %v %v", p.name, m, err))
}

func (p *probePoller) note(poll, ok bool, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if poll {
		p.polls++
	} else {
		p.queries++
	}
	if !ok {
		p.failures = append(p.failures, what)
	}
}

func (p *probePoller) report(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Logf("%d probe polls and %d queries across %d etcd stalls; %d failed", p.polls, p.queries, stalls, len(p.failures))
	if p.queries == 0 {
		t.Fatal("no query was sent")
	}
	for _, f := range p.failures {
		t.Error(f)
	}
}
