package etcdclient

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"
)

// checkSchemes refuses endpoint lists that would send something in
// plaintext that was meant to be encrypted. The etcd client takes the
// scheme of the first endpoint for all of them, so a mixed list would
// talk plaintext to https:// members; and TLS files with http:// URLs
// would be silently unused.
func checkSchemes(o Options) error {
	var plain, secure string
	for _, ep := range o.Endpoints {
		u, err := url.Parse(ep)
		if err != nil {
			return fmt.Errorf("etcd endpoint %q: %w", ep, err)
		}
		switch u.Scheme {
		case "https", "unixs":
			secure = ep
		default:
			plain = ep
		}
	}
	switch {
	case plain != "" && secure != "":
		return fmt.Errorf("etcd endpoints mix plaintext (%s) and TLS (%s): use https:// for every member", plain, secure)
	case plain != "" && o.hasTLSFiles():
		return fmt.Errorf("etcd TLS files given but endpoint %s is plaintext: use https:// (nothing is sent unencrypted)", plain)
	}
	return nil
}

func (o Options) hasTLSFiles() bool { return o.CertFile != "" || o.KeyFile != "" || o.CAFile != "" }

// tlsConfig checks the TLS files before anything dials, so a bad flag is
// one clear error at start rather than requests that time out: the files
// are readable, the key matches the certificate, the certificate is valid
// now, and the CA file holds certificates.
func tlsConfig(o Options, now time.Time) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := clientCertificate(o.CertFile, o.KeyFile, now)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if o.CAFile != "" {
		pool, err := caPool(o.CAFile, now)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func clientCertificate(certFile, keyFile string, now time.Time) (tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return tls.Certificate{}, errors.New("etcd TLS: a client certificate needs both its certificate and its key file")
	}
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.ReadFile(f); err != nil {
			return tls.Certificate{}, fmt.Errorf("etcd TLS: %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("etcd TLS: client certificate %s with key %s: %w", certFile, keyFile, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("etcd TLS: client certificate %s: %w", certFile, err)
	}
	if err := validAt(leaf, now); err != nil {
		return tls.Certificate{}, fmt.Errorf("etcd TLS: client certificate %s %w", certFile, err)
	}
	return cert, nil
}

// caPool reads every certificate of the CA file. An expired CA is refused
// too: no server certificate would verify against it.
func caPool(caFile string, now time.Time) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	pool, n := x509.NewCertPool(), 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: CA file %s: %w", caFile, err)
		}
		if err := validAt(ca, now); err != nil {
			return nil, fmt.Errorf("etcd TLS: CA certificate %q in %s %w", ca.Subject.CommonName, caFile, err)
		}
		pool.AddCert(ca)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("etcd TLS: CA file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// validAt says why c is not valid at now, completing "certificate X ...".
func validAt(c *x509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("is not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}
