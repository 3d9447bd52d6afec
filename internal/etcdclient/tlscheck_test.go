package etcdclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pair is a certificate and its key written as PEM files.
type pair struct {
	cert, key string
	parsed    *x509.Certificate
	signer    *ecdsa.PrivateKey
}

// issue writes a certificate valid from notBefore to notAfter, signed by
// parent (self-signed when nil).
func issue(t *testing.T, name string, parent *pair, notBefore, notAfter time.Time) *pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	signerCert, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	} else {
		signerCert, signerKey = parent.parsed, parent.signer
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &pair{cert: filepath.Join(dir, name+".pem"), key: filepath.Join(dir, name+"-key.pem"), signer: key}
	p.parsed, _ = x509.ParseCertificate(der)
	writeFile(t, p.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, p.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return p
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSConfigNamesTheProblem(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	ca := issue(t, "ca", nil, now.Add(-day), now.Add(day))
	good := issue(t, "good", ca, now.Add(-day), now.Add(day))
	other := issue(t, "other", ca, now.Add(-day), now.Add(day))
	expired := issue(t, "expired", ca, now.Add(-2*day), now.Add(-day))
	future := issue(t, "future", ca, now.Add(day), now.Add(2*day))
	expiredCA := issue(t, "old-ca", nil, now.Add(-2*day), now.Add(-day))
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	writeFile(t, notPEM, []byte("not a certificate\n"))

	tests := []struct {
		name string
		o    Options
		want string // "" for no error
	}{
		{"good", Options{CertFile: good.cert, KeyFile: good.key, CAFile: ca.cert}, ""},
		{"CA alone", Options{CAFile: ca.cert}, ""},
		{"certificate without key", Options{CertFile: good.cert}, "needs both"},
		{"missing file", Options{CertFile: good.cert + ".gone", KeyFile: good.key}, "no such file"},
		{"key of another certificate", Options{CertFile: good.cert, KeyFile: other.key}, "does not match"},
		{"expired", Options{CertFile: expired.cert, KeyFile: expired.key}, "expired at"},
		{"not yet valid", Options{CertFile: future.cert, KeyFile: future.key}, "not valid before"},
		{"expired CA", Options{CAFile: expiredCA.cert}, "expired at"},
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
	serverCA := issue(t, "server-ca", nil, now.Add(-time.Hour), now.Add(time.Hour))
	server := issue(t, "server", serverCA, now.Add(-time.Hour), now.Add(time.Hour))
	ourCA := issue(t, "our-ca", nil, now.Add(-time.Hour), now.Add(time.Hour))
	cert, err := tls.LoadX509KeyPair(server.cert, server.key)
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
	cfg, err := tlsConfig(Options{CAFile: ourCA.cert}, now)
	if err != nil {
		t.Fatal(err)
	}
	err = probe(ctx, "https://"+ln.Addr().String(), cfg)
	if err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("probe: %v, want the unknown authority", err)
	}
}
