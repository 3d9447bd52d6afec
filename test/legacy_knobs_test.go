//go:build integration

package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/harness"
)

// glogArgs are the glog flags a manifest written for the originals may
// carry: every binary starts with them (logging at debug for -v above 0)
// and notes the rest once.
var glogArgs = []string{"-v=2", "--logtostderr", "--alsologtostderr", "--log_dir=/var/log", "--stderrthreshold=INFO", "--vmodule=foo=3"}

// TestLegacyKnobsThroughTheBinaries runs each binary as an old manifest
// would, with glog's flags, and skydns with SkyDNS 2.5's metrics
// environment: PROMETHEUS_PORT, _PATH, _NAMESPACE and _SUBSYSTEM move and
// name the metrics (the legacy families beside today's), and the
// Graphite and StatHat settings, which skydns does not act on, are
// reported once.
func TestLegacyKnobsThroughTheBinaries(t *testing.T) {
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), svcKey, svcVal)

	t.Run("skydns", func(t *testing.T) {
		addr, metricsPort := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)), harness.FreePort(t)
		p := harness.Start(t, "skydns", harness.Binary(t, "skydns"),
			append([]string{"-machines=" + etcd.URL, "-addr=" + addr, "-domain=cluster.local."}, glogArgs...),
			fmt.Sprintf("PROMETHEUS_PORT=%d", metricsPort), "PROMETHEUS_PATH=/prom", "PROMETHEUS_NAMESPACE=ops",
			"PROMETHEUS_SUBSYSTEM=dns", "GRAPHITE_SERVER=127.0.0.1:2003", "GRAPHITE_PREFIX=skydns", "STATHAT_USER=ops",
			"SKYDNS_NAMESERVERS=127.0.0.1:9")
		harness.Eventually(t, 15*time.Second, "the service answered", func() error {
			m, err := harness.Exchange(addr, "udp", svcName, dns.TypeA)
			return harness.WantAnswers(m, err, "1.2.3.4")
		})
		url := fmt.Sprintf("http://127.0.0.1:%d/prom", metricsPort)
		for _, name := range []string{`ops_dns_dns_request_count{type="udp"}`, `skydns_dns_requests_total{proto="udp",type="A"}`} {
			if v := scrape(t, url, name); v == "" || v == "0" {
				t.Errorf("%s at %s = %q, want a count of the queries", name, url, v)
			}
		}
		// -v=2 is debug: each query is logged.
		awaitLogLines(t, p, map[string]int{"legacy metrics sinks are not supported": 1, "glog flags accepted and ignored": 1, "msg=query": -1})
		if !strings.Contains(p.Log(), "STATHAT_USER=ops") {
			t.Errorf("the unsupported settings are not named in the log:\n%s", p.Log())
		}
	})
	t.Run("kube2sky", func(t *testing.T) {
		p := startKube2skyNoAPI(t, etcd.URL, glogArgs)
		awaitLogLines(t, p, map[string]int{"glog flags accepted and ignored": 1})
	})
	t.Run("exec-healthz", func(t *testing.T) {
		h := startExecHealthz(t, false, append([]string{"-cmd=true", "-period=1s"}, glogArgs...)...)
		awaitLogLines(t, h.Process, map[string]int{"glog flags accepted and ignored": 1})
	})
}

// awaitLogLines waits until p's log has want[s] lines holding s (at least
// one where want[s] is -1), with p still running. A notice logged once
// at start is logged before skydns answers, so a second one would already
// be there.
func awaitLogLines(t *testing.T, p *harness.Process, want map[string]int) {
	t.Helper()
	harness.Eventually(t, 15*time.Second, p.Name+"'s log lines", func() error {
		if exited, err := p.Exited(); exited {
			t.Fatalf("%s exited: %v\n%s", p.Name, err, p.Log())
		}
		lines := strings.Split(p.Log(), "\n")
		for s, n := range want {
			got := 0
			for _, l := range lines {
				if strings.Contains(l, s) {
					got++
				}
			}
			if n < 0 && got == 0 || n >= 0 && got != n {
				return fmt.Errorf("%d lines with %q, want %d:\n%s", got, s, n, p.Log())
			}
		}
		return nil
	})
}
