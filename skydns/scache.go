package skydns

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// signatureReuse is how long a cached signature must still be valid to be
// served again (SkyDNS's rule): a validator's cache then never holds one
// past its expiry, however long the TTLs.
const signatureReuse = 48 * time.Hour

// sigCache keeps the RRSIG of each RRset signed (-scache of them), so a
// repeated answer costs a hash instead of a signature: an RSA signature is
// a millisecond. Keyed by a digest of the RRset's wire form, owner and TTL
// included, so a changed record or TTL is signed anew and the cache never
// serves a signature for other data. When full, a random entry goes.
type sigCache struct {
	limit int

	mu      sync.Mutex
	entries map[rrsetDigest]*dns.RRSIG
}

type rrsetDigest [sha256.Size]byte

// newSigCache holds up to limit signatures; 0 or less keeps none.
func newSigCache(limit int) *sigCache {
	return &sigCache{limit: limit, entries: make(map[rrsetDigest]*dns.RRSIG)}
}

// get is the signature kept for key, if it is valid for more than
// signatureReuse after now.
func (c *sigCache) get(key rrsetDigest, now time.Time) (*dns.RRSIG, bool) {
	c.mu.Lock()
	sig, ok := c.entries[key]
	c.mu.Unlock()
	if !ok || int64(sig.Expiration)-now.Unix() <= int64(signatureReuse/time.Second) {
		return nil, false
	}
	return sig, true
}

func (c *sigCache) put(key rrsetDigest, sig *dns.RRSIG) {
	if c.limit <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	putBounded(c.entries, key, sig, c.limit)
}

func (c *sigCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// digestOf is the cache key of rrset: its records' wire forms in sorted
// order (round robin shuffles an answer, and the signature is the same for
// every order).
func digestOf(rrset []dns.RR) rrsetDigest {
	wires := make([][]byte, len(rrset))
	for i, rr := range rrset {
		buf := make([]byte, dns.Len(rr))
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			n = 0 // Unpackable: signing it fails as well.
		}
		wires[i] = buf[:n]
	}
	if len(wires) > 1 {
		slices.SortFunc(wires, bytes.Compare)
	}
	h := sha256.New()
	for _, w := range wires {
		h.Write(w)
	}
	var d rrsetDigest
	h.Sum(d[:0])
	return d
}
