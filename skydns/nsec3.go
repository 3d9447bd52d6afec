package skydns

import (
	"encoding/base32"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Authenticated denial by NSEC3 white lies (RFC 7129 Appendix B, RFC 4470
// for NSEC): the index changes all the time and is never walked in hash
// order, so each denial is made up for the name asked. A record that
// covers a name spans only hash(name)-1 to hash(name)+1, so it proves
// nothing about any other name and lets nobody enumerate the zone. No
// salt and no extra iterations (RFC 9276): with white lies they would
// protect nothing.

// base32Hex is NSEC3's encoding of hashes (RFC 4648 base32hex, unpadded).
func base32Hex() *base32.Encoding { return base32.HexEncoding.WithPadding(base32.NoPadding) }

// denier makes the NSEC3 records of the denials in one zone.
type denier struct {
	domain string
	ttl    uint32 // The SOA minimum (RFC 5155 3: the negative TTL).
}

// nxdomain proves that name does not exist (RFC 5155 7.2.2): a record
// matching its closest encloser ce, one covering the next closer name and
// one covering the wildcard at ce. ce must be a proper ancestor of name in
// the zone.
func (d denier) nxdomain(name, ce string) []dns.RR {
	next := nextCloser(name, ce)
	proof := []dns.RR{d.matching(ce, 0), d.covering(next)}
	if wildcard := "*." + ce; wildcard != next {
		proof = append(proof, d.covering(wildcard))
	}
	return proof
}

// nodata proves that name, which exists, has no qtype record (RFC 5155
// 7.2.3, 7.2.4 for DS): one record matching it whose types lack qtype.
func (d denier) nodata(name string, qtype uint16) []dns.RR {
	return []dns.RR{d.matching(name, qtype)}
}

// matching is the NSEC3 record of name itself, listing the types a
// validator must see there, less qtype: at the apex SOA (which tells a
// validator it is the zone's own record, not its parent's) and DNSKEY, and
// RRSIG everywhere. It never lists NS, CNAME or DS: NS without SOA would
// make name a delegation, CNAME one it should have followed; so a DS query
// at any name below the apex is denied by the zone itself (at the apex, a
// validator seeing the zone's SOA asks the parent instead).
func (d denier) matching(name string, qtype uint16) *dns.NSEC3 {
	h := nsec3Hash(name)
	types := []uint16{dns.TypeRRSIG}
	if name == d.domain {
		types = []uint16{dns.TypeSOA, dns.TypeRRSIG, dns.TypeDNSKEY}
	}
	types = slices.DeleteFunc(types, func(t uint16) bool { return t == qtype })
	return d.record(h, hashStep(h, 1), types)
}

// covering is an NSEC3 record whose span holds only name's hash: a white
// lie with no types.
func (d denier) covering(name string) *dns.NSEC3 {
	h := nsec3Hash(name)
	return d.record(hashStep(h, -1), hashStep(h, 1), nil)
}

func (d denier) record(owner, next string, types []uint16) *dns.NSEC3 {
	return &dns.NSEC3{
		Hdr:        rrHeader(strings.ToLower(owner)+"."+d.domain, dns.TypeNSEC3, d.ttl),
		Hash:       dns.SHA1,
		HashLength: 20,
		NextDomain: next,
		TypeBitMap: types,
	}
}

// nsec3Hash is name's NSEC3 hash, SHA-1 with no salt and no extra
// iterations, in base32hex.
func nsec3Hash(name string) string { return dns.HashName(name, dns.SHA1, 0, "") }

// hashStep is the hash delta (+1 or -1) away from h, modulo 2^160: the
// neighbours of a white lie.
func hashStep(h string, delta int) string {
	b, err := base32Hex().DecodeString(h)
	if err != nil {
		return h
	}
	for i := len(b) - 1; i >= 0; i-- {
		old := b[i]
		b[i] += byte(delta)
		if (delta > 0 && b[i] > old) || (delta < 0 && b[i] < old) {
			break // No carry or borrow into the next byte.
		}
	}
	return base32Hex().EncodeToString(b)
}

// nextCloser is the ancestor of name one label longer than ce, its
// ancestor (RFC 5155 1.3); name itself when ce is not shorter.
func nextCloser(name, ce string) string {
	starts := dns.Split(name) // Where each label begins, escaped dots aside.
	if i := len(starts) - dns.CountLabel(ce) - 1; i >= 0 {
		return name[starts[i]:]
	}
	return name
}
