package skydns

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// writeTestKey writes a key pair for owner as dnssec-keygen would, under
// dir, and returns its basename.
func writeTestKey(t testing.TB, dir, owner string, alg uint8, flags uint16) string {
	t.Helper()
	key := &dns.DNSKEY{Hdr: rrHeader(owner, dns.TypeDNSKEY, 3600), Flags: flags, Protocol: 3, Algorithm: alg}
	bits := map[uint8]int{dns.RSASHA1: 1024, dns.RSASHA256: 2048, dns.ECDSAP256SHA256: 256, dns.ED25519: 256}[alg]
	private, err := key.Generate(bits)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s-%d", strings.TrimSuffix(owner, "."), dns.AlgorithmToString[alg], flags))
	writeFile(t, base+".key", "; made by the test\n"+key.String()+"\n")
	writeFile(t, base+".private", key.PrivateKeyString(private))
	return base
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSigningKey(t *testing.T) {
	dir := t.TempDir()
	good := writeTestKey(t, dir, "skydns.test.", dns.ECDSAP256SHA256, 257)
	other := writeTestKey(t, dir, "skydns.test.", dns.ECDSAP256SHA256, 256)
	mixed := filepath.Join(dir, "mixed")
	copyFile(t, good+".key", mixed+".key")
	copyFile(t, other+".private", mixed+".private")
	stray := filepath.Join(dir, "stray")
	copyFile(t, good+".key", stray+".key")
	tests := []struct {
		name, basename, err string
	}{
		{"ecdsa", good, ""},
		{"ecdsa zsk", other, ""},
		{"rsa", writeTestKey(t, dir, "skydns.test.", dns.RSASHA256, 257), ""},
		{"ed25519", writeTestKey(t, dir, "skydns.test.", dns.ED25519, 257), ""},
		{"missing", filepath.Join(dir, "nothing"), "nothing.key: no such file"},
		{"no private", stray, "stray.private: no such file"},
		{"owner", writeTestKey(t, dir, "example.org.", dns.ECDSAP256SHA256, 257), `the key is for "example.org.", not for the domain "skydns.test."`},
		{"algorithm", writeTestKey(t, dir, "skydns.test.", dns.RSASHA1, 257), "algorithm RSASHA1 is not supported"},
		{"not a zone key", writeTestKey(t, dir, "skydns.test.", dns.ED25519, 0), "not a zone key"},
		{"pair", mixed, "mixed.private does not match"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newTestConfig()
			cfg.DNSSEC = tc.basename
			err := cfg.Finish()
			switch {
			case tc.err == "" && (err != nil || cfg.options().Zone.Key == nil):
				t.Fatalf("err %v, key %v", err, cfg.options().Zone.Key)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err %v, want one with %q", err, tc.err)
			case err != nil && (!strings.HasPrefix(err.Error(), "--dnssec: ") || strings.Contains(err.Error(), "\n")):
				t.Fatalf("err %q: want one line naming --dnssec", err)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(b))
}

// The white lies prove what they must and nothing else: the closest
// encloser matched, the next closer name and the wildcard covered, and no
// record covering or matching any other name asked about.
func TestNSEC3WhiteLies(t *testing.T) {
	d := denier{domain: "skydns.test.", ttl: 60}
	tests := []struct {
		name, ce, next string
	}{
		{"nope.skydns.test.", "skydns.test.", "nope.skydns.test."},
		{"a.b.svc.skydns.test.", "svc.skydns.test.", "b.svc.skydns.test."},
		{"x.web.default.svc.skydns.test.", "web.default.svc.skydns.test.", "x.web.default.svc.skydns.test."},
		{"*.skydns.test.", "skydns.test.", "*.skydns.test."},
	}
	for _, tc := range tests {
		proof := d.nxdomain(tc.name, tc.ce)
		if got := nextCloser(tc.name, tc.ce); got != tc.next {
			t.Errorf("nextCloser(%s, %s) = %s, want %s", tc.name, tc.ce, got, tc.next)
		}
		want := 3
		if tc.next == "*."+tc.ce {
			want = 2 // One record covers both.
		}
		if len(proof) != want {
			t.Fatalf("%s: %d records, want %d", tc.name, len(proof), want)
		}
		ce, next := proof[0].(*dns.NSEC3), proof[1].(*dns.NSEC3)
		wildcard := proof[len(proof)-1].(*dns.NSEC3)
		switch {
		case !ce.Match(tc.ce) || slices.Contains(ce.TypeBitMap, dns.TypeNS) || slices.Contains(ce.TypeBitMap, dns.TypeDNAME):
			t.Errorf("%s: %v does not match %s as a closest encloser", tc.name, ce, tc.ce)
		case !next.Cover(tc.next) || next.Cover(tc.ce) || next.Match(tc.next):
			t.Errorf("%s: %v does not cover the next closer %s alone", tc.name, next, tc.next)
		case !wildcard.Cover("*." + tc.ce):
			t.Errorf("%s: %v does not cover *.%s", tc.name, wildcard, tc.ce)
		case !strings.HasSuffix(ce.Hdr.Name, ".skydns.test.") || ce.Hdr.Ttl != 60 || ce.Iterations != 0 || ce.Salt != "":
			t.Errorf("%s: owner, TTL or parameters: %v", tc.name, ce)
		}
	}
}

func TestNSEC3NoData(t *testing.T) {
	d := denier{domain: "skydns.test.", ttl: 60}
	tests := []struct {
		name  string
		qtype uint16
		types []uint16
	}{
		{"svc.skydns.test.", dns.TypeA, []uint16{dns.TypeRRSIG}},
		{"svc.skydns.test.", dns.TypeDS, []uint16{dns.TypeRRSIG}},
		{"skydns.test.", dns.TypeNS, []uint16{dns.TypeSOA, dns.TypeRRSIG, dns.TypeDNSKEY}},
		{"skydns.test.", dns.TypeDNSKEY, []uint16{dns.TypeSOA, dns.TypeRRSIG}},
	}
	for _, tc := range tests {
		proof := d.nodata(tc.name, tc.qtype)
		n := proof[0].(*dns.NSEC3)
		if len(proof) != 1 || !n.Match(tc.name) || !slices.Equal(n.TypeBitMap, tc.types) {
			t.Errorf("nodata(%s, %s) = %v, want one record matching it with %v", tc.name, dns.TypeToString[tc.qtype], proof, tc.types)
		}
	}
}

func TestHashStep(t *testing.T) {
	zero, top := strings.Repeat("0", 32), strings.Repeat("V", 32)
	tests := []struct {
		h     string
		delta int
		want  string
	}{
		{zero, 1, strings.Repeat("0", 31) + "1"},
		{zero, -1, top},
		{top, 1, zero},
		{strings.Repeat("0", 30) + "10", -1, strings.Repeat("0", 30) + "0V"},
	}
	for _, tc := range tests {
		if got := hashStep(tc.h, tc.delta); got != tc.want {
			t.Errorf("hashStep(%s, %d) = %s, want %s", tc.h, tc.delta, got, tc.want)
		}
	}
}

func TestSigCacheBoundAndReuse(t *testing.T) {
	t0 := testClock()
	sig := func(expires time.Duration) *dns.RRSIG { return &dns.RRSIG{Expiration: uint32(t0.Add(expires).Unix())} }
	digest := func(i int) rrsetDigest {
		return digestOf([]dns.RR{newA("a.skydns.test.", 60, []byte{10, 0, 0, byte(i)})})
	}

	c := newSigCache(2)
	for i := range 3 {
		c.put(digest(i), sig(signatureValidity))
	}
	if c.len() != 2 {
		t.Fatalf("%d signatures kept, want the bound 2", c.len())
	}
	reuse := []struct {
		after time.Duration
		hit   bool
	}{
		{0, true}, {4 * 24 * time.Hour, true}, {signatureValidity - signatureReuse - time.Second, true},
		{signatureValidity - signatureReuse, false}, {8 * 24 * time.Hour, false},
	}
	c = newSigCache(1)
	c.put(digest(0), sig(signatureValidity))
	for _, tc := range reuse {
		if _, hit := c.get(digest(0), t0.Add(tc.after)); hit != tc.hit {
			t.Errorf("%v after signing: hit %v, want %v", tc.after, hit, tc.hit)
		}
	}
	off := newSigCache(0)
	off.put(digest(0), sig(signatureValidity))
	if off.len() != 0 {
		t.Error("-scache=0 kept a signature")
	}
}

// The digest is the RRset's, whatever the order of its records.
func TestDigestIgnoresOrder(t *testing.T) {
	a, b := newA("x.skydns.test.", 60, []byte{10, 0, 0, 1}), newA("x.skydns.test.", 60, []byte{10, 0, 0, 2})
	if digestOf([]dns.RR{a, b}) != digestOf([]dns.RR{b, a}) {
		t.Fatal("order changes the digest")
	}
	if c := newA("x.skydns.test.", 30, []byte{10, 0, 0, 1}); digestOf([]dns.RR{a}) == digestOf([]dns.RR{c}) {
		t.Fatal("the TTL does not change the digest")
	}
}

// signedHandler is the test handler with the zone signed by a new key of
// alg.
func signedHandler(t testing.TB, alg uint8, ix *Index, with ...func(*Config)) (*Handler, *dns.DNSKEY) {
	t.Helper()
	cfg := newTestConfig()
	cfg.DNSSEC = writeTestKey(t, t.TempDir(), "skydns.test.", alg, 257)
	for _, f := range with {
		f(cfg)
	}
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	return newTestHandler(t, cfg, ix), cfg.signingKey.DNSKEY
}

func doQuestion(name string, qtype, id uint16) *dns.Msg {
	return question(name, qtype, id).SetEdns0(1232, true)
}

// verifyAll checks that every RRset of the domain in m is signed, by key,
// and returns the RRsets signed.
func verifyAll(t *testing.T, m *dns.Msg, key *dns.DNSKEY) int {
	t.Helper()
	signed := 0
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		sigs := map[string]*dns.RRSIG{}
		sets := map[string][]dns.RR{}
		for _, rr := range section {
			h := rr.Header()
			switch rr := rr.(type) {
			case *dns.RRSIG:
				sigs[strings.ToLower(h.Name)+dns.TypeToString[rr.TypeCovered]] = rr
			case *dns.OPT:
			default:
				k := strings.ToLower(h.Name) + dns.TypeToString[h.Rrtype]
				sets[k] = append(sets[k], rr)
			}
		}
		for k, set := range sets {
			sig := sigs[k]
			if sig == nil {
				t.Fatalf("%s unsigned in\n%v", k, m)
			}
			if err := sig.Verify(key, set); err != nil || !sig.ValidityPeriod(testClock()) {
				t.Fatalf("%s: %v (valid now: %v)", k, err, sig.ValidityPeriod(testClock()))
			}
			signed++
		}
	}
	return signed
}

func TestSignedReplies(t *testing.T) {
	ix := loadIndex(t, testRecords)
	for _, alg := range []uint8{dns.RSASHA256, dns.ECDSAP256SHA256} {
		h, key := signedHandler(t, alg, ix)
		tests := []struct {
			name    string
			qtype   uint16
			rcode   int
			nsec3   int
			answers int // RRsets in the answer section.
		}{
			{"testservice.default.svc.skydns.test.", dns.TypeA, dns.RcodeSuccess, 0, 1},
			{"_http1._tcp.testservice.default.svc.skydns.test.", dns.TypeSRV, dns.RcodeSuccess, 0, 1},
			{"skydns.test.", dns.TypeDNSKEY, dns.RcodeSuccess, 0, 1},
			{"nothing.skydns.test.", dns.TypeA, dns.RcodeNameError, 3, 0},
			{"x.testservice.default.svc.skydns.test.", dns.TypeA, dns.RcodeNameError, 3, 0},
			{"testservice.default.svc.skydns.test.", dns.TypeAAAA, dns.RcodeSuccess, 1, 0},
			{"svc.skydns.test.", dns.TypeTXT, dns.RcodeSuccess, 1, 0},
			{"default.svc.skydns.test.", dns.TypeDS, dns.RcodeSuccess, 1, 0},
			{"skydns.test.", dns.TypeDS, dns.RcodeSuccess, 1, 0},
		}
		for _, tc := range tests {
			for id := range uint16(2) { // Built, then packed or from the signature cache.
				// Over TCP: an RSA-2048 denial is over the 1232 bytes of UDP.
				m := unpack(t, serve(t, h, doQuestion(tc.name, tc.qtype, id), true))
				if m.Rcode != tc.rcode || !m.AuthenticatedData || !m.IsEdns0().Do() {
					t.Fatalf("%s %s %s: rcode, AD or DO wrong:\n%v", dns.AlgorithmToString[alg], tc.name, dns.TypeToString[tc.qtype], m)
				}
				nsec3 := 0
				for _, rr := range m.Ns {
					if _, ok := rr.(*dns.NSEC3); ok {
						nsec3++
					}
				}
				if nsec3 != tc.nsec3 {
					t.Fatalf("%s %s: %d NSEC3, want %d:\n%v", tc.name, dns.TypeToString[tc.qtype], nsec3, tc.nsec3, m)
				}
				verifyAll(t, m, key)
			}
		}
	}
}

// A reply to a request without DO is never signed, and never the signed
// one from the packed answers, nor the reverse.
func TestPackedAnswersKeepDOApart(t *testing.T) {
	h, _ := signedHandler(t, dns.ECDSAP256SHA256, loadIndex(t, testRecords))
	name := "testservice.default.svc.skydns.test."
	plain := func() *dns.Msg { return question(name, dns.TypeA, 1).SetEdns0(1232, false) }
	for round := range 3 {
		for _, req := range []*dns.Msg{plain(), doQuestion(name, dns.TypeA, 1), question(name, dns.TypeA, 1)} {
			m := unpack(t, serve(t, h, req, false))
			signed := len(m.Answer) == 2
			if wantDO := req.IsEdns0() != nil && req.IsEdns0().Do(); signed != wantDO || (m.IsEdns0() != nil && m.IsEdns0().Do() != wantDO) {
				t.Fatalf("round %d, DO %v: reply\n%v", round, wantDO, m)
			}
		}
	}
	if h.PackedEntries() != 3 {
		t.Fatalf("%d packed replies, want 3 (plain EDNS0, DO, no EDNS0)", h.PackedEntries())
	}
}

// Unsigned, DNSKEY is still answered; with no key, it is NODATA.
func TestDNSKEYWithoutDO(t *testing.T) {
	ix := loadIndex(t, testRecords)
	h, key := signedHandler(t, dns.ED25519, ix)
	m := unpack(t, serve(t, h, question("skydns.test.", dns.TypeDNSKEY, 1), false))
	if len(m.Answer) != 1 || !bytes.Equal([]byte(m.Answer[0].(*dns.DNSKEY).PublicKey), []byte(key.PublicKey)) {
		t.Fatalf("DNSKEY:\n%v", m)
	}
	m = unpack(t, serve(t, newTestHandler(t, newTestConfig(), ix), question("skydns.test.", dns.TypeDNSKEY, 1), false))
	if len(m.Answer) != 0 || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("DNSKEY unsigned:\n%v", m)
	}
}

// /skydns/config may set the key and the cache, as SkyDNS's did.
func TestSigningFromTheEtcdOverlay(t *testing.T) {
	base := writeTestKey(t, t.TempDir(), "skydns.test.", dns.ECDSAP256SHA256, 257)
	overlay := fmt.Sprintf(`{"dnssec":%q,"scache":5}`, base)
	opts, err := newTestConfig().Load([]byte(overlay), func(string) (*dns.ClientConfig, error) { return nil, os.ErrNotExist })
	if err != nil || opts.Zone.Key == nil || opts.SignatureCache != 5 {
		t.Fatalf("err %v, key %v, cache %d", err, opts.Zone.Key, opts.SignatureCache)
	}
	if _, err := newTestConfig().Load([]byte(`{"dnssec":"/nonexistent/K"}`), nil); err == nil || !strings.Contains(err.Error(), "--dnssec") {
		t.Fatalf("a missing key in the overlay: %v", err)
	}
}

// Through the handler: a signature is served again while it has more than
// 48 hours left, and made anew after.
func TestSignaturesReusedWhileMoreThan48HoursLeft(t *testing.T) {
	now := testClock()
	cfg := newTestConfig()
	cfg.AnswerCache = 0 // Every reply built: the signature cache alone decides.
	cfg.DNSSEC = writeTestKey(t, t.TempDir(), "skydns.test.", dns.ECDSAP256SHA256, 257)
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	h := newTestHandler(t, cfg, loadIndex(t, testRecords), func(d *Deps) { d.Clock = func() time.Time { return now } })
	inception := func() uint32 {
		m := unpack(t, serve(t, h, doQuestion("testservice.default.svc.skydns.test.", dns.TypeA, 1), false))
		return m.Answer[len(m.Answer)-1].(*dns.RRSIG).Inception
	}
	first := inception()
	tests := []struct {
		after  time.Duration
		reused bool
	}{
		{time.Hour, true}, {4 * 24 * time.Hour, true}, {signatureValidity - signatureReuse + time.Second, false},
	}
	for _, tc := range tests {
		now = testClock().Add(tc.after)
		if got := inception(); (got == first) != tc.reused {
			t.Errorf("%v after the first: inception %d (first %d), want reused %v", tc.after, got, first, tc.reused)
		}
	}
}
