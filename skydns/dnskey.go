package skydns

import (
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// SigningKey is the zone's DNSSEC key pair (-dnssec), as dnssec-keygen
// writes it: <basename>.key holds the DNSKEY record, <basename>.private
// the private key. One key signs every RRset, the DNSKEY included, as in
// SkyDNS.
type SigningKey struct {
	DNSKEY  *dns.DNSKEY
	Private crypto.Signer
	tag     uint16
}

// loadSigningKey reads the key pair named by basename for domain (nil
// when basename is ""). The key must be for the domain itself, in an
// algorithm today's validators accept, and the two files must belong
// together: each failure is one line, fit to stop the start.
func loadSigningKey(basename, domain string) (*SigningKey, error) {
	if basename == "" {
		return nil, nil
	}
	key, err := readDNSKEY(basename+".key", domain)
	if err != nil {
		return nil, err
	}
	private, err := readPrivateKey(key, basename+".private")
	if err != nil {
		return nil, err
	}
	k := &SigningKey{DNSKEY: key, Private: private, tag: key.KeyTag()}
	if err := k.selfCheck(domain); err != nil {
		return nil, fmt.Errorf("%s does not match %s.key: %w", basename+".private", basename, err)
	}
	return k, nil
}

func readDNSKEY(file, domain string) (*dns.DNSKEY, error) {
	rr, err := parseFile(file, func(r io.Reader) (dns.RR, error) { return dns.ReadRR(r, file) })
	if err != nil {
		return nil, err
	}
	key, ok := rr.(*dns.DNSKEY)
	switch {
	case !ok:
		return nil, fmt.Errorf("%s: holds no DNSKEY record", file)
	case !strings.EqualFold(dns.Fqdn(key.Hdr.Name), domain):
		// Signatures name the key's owner as signer: a validator looks for
		// the key there, so a key for another name could never validate.
		return nil, fmt.Errorf("%s: the key is for %q, not for the domain %q", file, key.Hdr.Name, domain)
	case key.Flags&dns.ZONE == 0:
		return nil, fmt.Errorf("%s: not a zone key (flags %d): make it with dnssec-keygen -n ZONE", file, key.Flags)
	case !signingAlgorithm(key.Algorithm):
		return nil, fmt.Errorf("%s: algorithm %s is not supported (use RSASHA256, RSASHA512, ECDSAP256SHA256, ECDSAP384SHA384 or ED25519)",
			file, algorithmName(key.Algorithm))
	}
	key.Hdr.Name = domain
	return key, nil
}

func readPrivateKey(key *dns.DNSKEY, file string) (crypto.Signer, error) {
	private, err := parseFile(file, func(r io.Reader) (crypto.PrivateKey, error) { return key.ReadPrivateKey(r, file) })
	if err != nil {
		return nil, err
	}
	signer, ok := private.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: the private key cannot sign", file)
	}
	return signer, nil
}

// parseFile is what parse makes of file's content; an error names file
// (os.Open's does already).
func parseFile[T any](file string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(file)
	if err != nil {
		return zero, err
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// selfCheck signs the DNSKEY with the private key and verifies it with the
// public one: miekg/dns does not check that the two files are one pair,
// and a mismatch would otherwise show only as every answer failing to
// validate.
func (k *SigningKey) selfCheck(domain string) error {
	now := time.Now()
	sig := k.rrsig(domain, now)
	rrset := []dns.RR{k.DNSKEY}
	if err := sig.Sign(k.Private, rrset); err != nil {
		return err
	}
	if err := sig.Verify(k.DNSKEY, rrset); err != nil {
		return errors.New("a signature made with the private key does not verify")
	}
	return nil
}

// rrsig is the signature to fill in for an RRset signed at now: valid from
// 3 hours before (clocks of validators lag) to 7 days after, as in SkyDNS.
func (k *SigningKey) rrsig(domain string, now time.Time) *dns.RRSIG {
	return &dns.RRSIG{
		Algorithm:  k.DNSKEY.Algorithm,
		KeyTag:     k.tag,
		SignerName: domain,
		Inception:  uint32(now.Add(-signatureBackdate).Unix()),
		Expiration: uint32(now.Add(signatureValidity).Unix()),
	}
}

// Signature validity, as SkyDNS had it (legacy-behaviour.md §2.11).
const (
	signatureBackdate = 3 * time.Hour
	signatureValidity = 7 * 24 * time.Hour
)

// signingAlgorithm reports whether alg is one skydns signs with: those
// miekg/dns signs with that RFC 8624 does not deprecate for signing.
func signingAlgorithm(alg uint8) bool {
	switch alg {
	case dns.RSASHA256, dns.RSASHA512, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		return true
	}
	return false
}

func algorithmName(alg uint8) string {
	if name, ok := dns.AlgorithmToString[alg]; ok {
		return name
	}
	return fmt.Sprint(alg)
}
