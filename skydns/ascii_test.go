package skydns

import (
	"strings"
	"testing"
)

// naiveHasUpper is the definition hasUpperASCII must agree with.
func naiveHasUpper(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' }) >= 0
}

func TestHasUpperASCII(t *testing.T) {
	tests := []string{
		"", "a", "A", "z", "Z", "@", "[", "`", "{",
		"testservice.default.svc.cluster.local.",
		"testservice.default.svc.cluster.locaL.",
		"Testservice.default.svc.cluster.local.",
		"testserv\xc1ce.default", // 0xc1 is 'A' with the high bit set: not a letter.
		"\xda\xc1\xdb\xc0\x80\xff\x7f\x40xxxxxxxx",
		"@@@@@@@@[[[[[[[[", "@@@@@@@@[[[[[[[Z", "AAAAAAAA", "aaaaaaaaaaaaaaaaaaaaaaaB",
	}
	// Every byte value in every position of a 17-byte string.
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 17; pos++ {
			b := []byte(strings.Repeat("a", 17))
			b[pos] = byte(c)
			tests = append(tests, string(b))
		}
	}
	for _, s := range tests {
		if got, want := hasUpperASCII(s), naiveHasUpper(s); got != want {
			t.Errorf("hasUpperASCII(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestLowerASCII(t *testing.T) {
	for in, want := range map[string]string{
		"a.b.":                     "a.b.",
		"TestService.Default.SVC.": "testservice.default.svc.",
		"\xc1B":                    "\xc1b",
	} {
		if got := lowerASCII(in); got != want {
			t.Errorf("lowerASCII(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzHasUpperASCII(f *testing.F) {
	f.Add("testservice.default.svc.cluster.local.")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := hasUpperASCII(s), naiveHasUpper(s); got != want {
			t.Fatalf("hasUpperASCII(%q) = %v, want %v", s, got, want)
		}
	})
}
