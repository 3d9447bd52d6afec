//go:build integration

package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/testcerts"
	"github.com/skypod/skypod/test/harness"
)

// tlsFixture is a three-member etcd cluster that accepts clients over TLS
// with a certificate from ca only, and the certificates to try on it.
type tlsFixture struct {
	members   []*harness.Etcd
	client    *clientv3.Client // Presents a good certificate.
	endpoints string           // Every member, comma-separated.
	ca        *testcerts.CA
	good      testcerts.Cert
	expired   testcerts.Cert
	otherCA   *testcerts.CA // Unrelated: verifies nothing etcd presents.
}

func startTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	ca := testcerts.NewCA(t, "etcd-ca")
	f := &tlsFixture{
		ca: ca, otherCA: testcerts.NewCA(t, "other-ca"),
		good:    ca.Client(t, "client", time.Now().Add(time.Hour)),
		expired: ca.Client(t, "expired", time.Now().Add(-time.Hour)),
	}
	f.members = harness.StartEtcdCluster(t, 3, &harness.EtcdTLS{Server: ca.Server(t, "etcd"), Client: f.good, CA: ca.CertFile})
	f.endpoints = harness.Servers(f.members)
	f.client = f.members[0].Client()
	return f
}

// skydnsTLS are skydns's TLS flags for cert (none when empty) and ca.
func skydnsTLS(cert testcerts.Cert, ca string) []string {
	args := []string{"-ca-cert=" + ca}
	if cert.CertFile != "" {
		args = append(args, "-tls-pem="+cert.CertFile, "-tls-key="+cert.KeyFile)
	}
	return args
}

// kube2skyTLS are kube2sky's.
func kube2skyTLS(cert testcerts.Cert, ca string) []string {
	args := []string{"--etcd-cafile=" + ca}
	if cert.CertFile != "" {
		args = append(args, "--etcd-certfile="+cert.CertFile, "--etcd-keyfile="+cert.KeyFile)
	}
	return args
}

// TestEtcdMutualTLS runs skydns and kube2sky against a three-member etcd
// that requires client certificates: the good ones work, and each bad
// one is one log line naming the problem.
func TestEtcdMutualTLS(t *testing.T) {
	f := startTLSFixture(t)
	f.members[1].Put(f.client, "/skydns/local/cluster/tls/a", `{"host":"192.0.2.10"}`)

	t.Run("skydns answers over TLS", func(t *testing.T) {
		s := startSkydns(t, f.endpoints, skydnsTLS(f.good, f.ca.CertFile)...)
		harness.Eventually(t, 10*time.Second, "record over TLS", func() error {
			m, err := harness.Exchange(s.Addr, "udp", "a.tls.cluster.local.", dns.TypeA)
			return harness.WantAnswers(m, err, "192.0.2.10")
		})
	})

	cases := []struct {
		name      string
		skydns    []string
		kube2sky  []string
		endpoints string
		want      []string // All in one line of the log.
		exits     bool
	}{
		{"wrong CA", skydnsTLS(f.good, f.otherCA.CertFile), kube2skyTLS(f.good, f.otherCA.CertFile), f.endpoints,
			[]string{"etcd member unusable", "TLS handshake", "x509", "unknown authority"}, false},
		{"no client certificate", skydnsTLS(testcerts.Cert{}, f.ca.CertFile), kube2skyTLS(testcerts.Cert{}, f.ca.CertFile), f.endpoints,
			[]string{"etcd member unusable", "refused the connection", "certificate required"}, false},
		{"expired client certificate", skydnsTLS(f.expired, f.ca.CertFile), kube2skyTLS(f.expired, f.ca.CertFile), f.endpoints,
			[]string{"client certificate", f.expired.CertFile, "expired at"}, true},
		{"plaintext to a TLS-only etcd", nil, nil, strings.ReplaceAll(f.endpoints, "https://", "http://"),
			[]string{"etcd member unusable", "plaintext", "TLS-only"}, false},
		{"TLS files with plaintext URLs", skydnsTLS(f.good, f.ca.CertFile), kube2skyTLS(f.good, f.ca.CertFile),
			strings.ReplaceAll(f.endpoints, "https://", "http://"), []string{"TLS files given", "is plaintext"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expectLogLine(t, startSkydnsRaw(t, tc.endpoints, tc.skydns), tc.want, tc.exits)
			expectLogLine(t, startKube2skyNoAPI(t, tc.endpoints, tc.kube2sky), tc.want, tc.exits)
		})
	}
}

// startSkydnsRaw starts skydns without waiting for anything.
func startSkydnsRaw(t *testing.T, endpoints string, extra []string) *harness.Process {
	t.Helper()
	args := append([]string{"-machines=" + endpoints, fmt.Sprintf("-addr=127.0.0.1:%d", harness.FreePort(t)),
		"-domain=cluster.local."}, extra...)
	return harness.Start(t, "skydns", harness.Binary(t, "skydns"), args,
		fmt.Sprintf("PROMETHEUS_PORT=%d", harness.FreePort(t)), "SKYDNS_NAMESERVERS=127.0.0.1:9")
}

// startKube2skyNoAPI starts kube2sky against an API server that is not
// there: its etcd client, and so the checks of its TLS, start regardless.
func startKube2skyNoAPI(t *testing.T, endpoints string, extra []string) *harness.Process {
	t.Helper()
	args := append([]string{"--domain=cluster.local", "--etcd-server=" + endpoints,
		fmt.Sprintf("--kube-master-url=http://127.0.0.1:%d", harness.FreePort(t)),
		fmt.Sprintf("--healthz-port=%d", harness.FreePort(t))}, extra...)
	return harness.Start(t, "kube2sky", harness.Binary(t, "kube2sky"), args)
}

// expectLogLine waits for one log line holding every want, and for a
// non-zero exit when exits.
func expectLogLine(t *testing.T, p *harness.Process, want []string, exits bool) {
	t.Helper()
	var line string
	harness.Eventually(t, 15*time.Second, p.Name+" names the problem", func() error {
		for _, l := range strings.Split(p.Log(), "\n") {
			if containsAll(l, want) {
				line = l
				return nil
			}
		}
		return fmt.Errorf("no line with all of %q in %q", want, p.Log())
	})
	t.Logf("%s: %s", p.Name, line)
	if !exits {
		return
	}
	harness.Eventually(t, 10*time.Second, p.Name+" exits", func() error {
		if exited, err := p.Exited(); !exited || err == nil {
			return fmt.Errorf("exited %v, err %v", exited, err)
		}
		return nil
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestKube2skyWritesOverMutualTLS: kube2sky with good certificates writes
// the API server's records into a TLS-only etcd cluster.
func TestKube2skyWritesOverMutualTLS(t *testing.T) {
	f := startTLSFixture(t)
	c := harness.StartCluster(t)
	grantKube2sky(t, c)
	port := harness.FreePort(t)
	args := append([]string{"--domain=cluster.local", "--etcd-server=" + f.endpoints,
		"--kubecfg-file=" + c.Kubeconfig(t, harness.Kube2skyToken), fmt.Sprintf("--healthz-port=%d", port)},
		kube2skyTLS(f.good, f.ca.CertFile)...)
	p := harness.Start(t, "kube2sky", harness.Binary(t, "kube2sky"), args)
	harness.Eventually(t, 60*time.Second, "kubernetes service written over TLS", func() error {
		if exited, err := p.Exited(); exited {
			t.Fatalf("kube2sky exited: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := f.client.Get(ctx, "/skydns/local/cluster/svc/default/kubernetes", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil || resp.Count == 0 {
			return fmt.Errorf("count %v, err %v", resp, err)
		}
		return nil
	})
}
