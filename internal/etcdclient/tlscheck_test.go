package etcdclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skypod/skypod/internal/testcerts"
)

// writeFile writes data to path, or fails the test.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// issue signs a certificate valid from notBefore to notAfter with ca, for
// 127.0.0.1 and both usages.
func issue(t *testing.T, ca *testcerts.CA, name string, notBefore, notAfter time.Time) testcerts.Cert {
	t.Helper()
	return ca.Issue(t, name, notBefore, notAfter, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	})
}

func TestTLSConfigNamesTheProblem(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	ca := testcerts.NewCAValid(t, "ca", now.Add(-day), now.Add(day))
	good := issue(t, ca, "good", now.Add(-day), now.Add(day))
	other := issue(t, ca, "other", now.Add(-day), now.Add(day))
	expired := issue(t, ca, "expired", now.Add(-2*day), now.Add(-day))
	future := issue(t, ca, "future", now.Add(day), now.Add(2*day))
	expiredCA := testcerts.NewCAValid(t, "old-ca", now.Add(-2*day), now.Add(-day))
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	writeFile(t, notPEM, []byte("not a certificate\n"))

	tests := []struct {
		name string
		o    Options
		want string // "" for no error
	}{
		{"good", Options{CertFile: good.CertFile, KeyFile: good.KeyFile, CAFile: ca.CertFile}, ""},
		{"CA alone", Options{CAFile: ca.CertFile}, ""},
		{"certificate without key", Options{CertFile: good.CertFile}, "needs both"},
		{"missing file", Options{CertFile: good.CertFile + ".gone", KeyFile: good.KeyFile}, "no such file"},
		{"key of another certificate", Options{CertFile: good.CertFile, KeyFile: other.KeyFile}, "does not match"},
		{"expired", Options{CertFile: expired.CertFile, KeyFile: expired.KeyFile}, "expired at"},
		{"not yet valid", Options{CertFile: future.CertFile, KeyFile: future.KeyFile}, "not valid before"},
		{"expired CA", Options{CAFile: expiredCA.CertFile}, "expired at"},
		{"CA file without certificates", Options{CAFile: notPEM}, "holds no PEM certificate"},
	}
	for _, tc := range tests {
		_, err := tlsConfig(tc.o, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.name, err, tc.want)
		}
	}
}

func TestCheckSchemesRefusesPlaintextWithTLS(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{Endpoints: []string{"http://127.0.0.1:2379", "http://127.0.0.1:2380"}}, ""},
		{Options{Endpoints: []string{"https://127.0.0.1:2379"}, CAFile: "ca.pem"}, ""},
		{Options{Endpoints: []string{"http://127.0.0.1:2379", "https://127.0.0.1:2380"}}, "mix plaintext"},
		{Options{Endpoints: []string{"http://127.0.0.1:2379"}, CertFile: "c.pem"}, "is plaintext"},
	}
	for _, tc := range tests {
		err := checkSchemes(tc.o)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: error %v, want %q", tc.o.Endpoints, err, tc.want)
		}
	}
}

// TestProbeNamesAnUnknownCA: a TLS server whose certificate our CA did
// not sign fails the probe's handshake with the x509 reason.
func TestProbeNamesAnUnknownCA(t *testing.T) {
	now := time.Now()
	serverCA := testcerts.NewCAValid(t, "server-ca", now.Add(-time.Hour), now.Add(time.Hour))
	server := issue(t, serverCA, "server", now.Add(-time.Hour), now.Add(time.Hour))
	ourCA := testcerts.NewCAValid(t, "our-ca", now.Add(-time.Hour), now.Add(time.Hour))
	cert, err := tls.LoadX509KeyPair(server.CertFile, server.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).HandshakeContext(ctx); c.Close() }()
		}
	}()
	cfg, err := tlsConfig(Options{CAFile: ourCA.CertFile}, now)
	if err != nil {
		t.Fatal(err)
	}
	err = probe(ctx, "https://"+ln.Addr().String(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("probe: %v, want the unknown authority", err)
	}
}
