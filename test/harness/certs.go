package harness

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// ClientConfig is a TLS configuration presenting the client certificate
// and trusting the CA, for the harness's own etcd clients.
func (e *EtcdTLS) ClientConfig(t testing.TB) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(e.Client.CertFile, e.Client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(e.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}
}
