package skydns

// DNS names compare without regard to ASCII case (RFC 4343), and almost
// every name and key arrives in lowercase already. These two functions are
// on the path of every query: they look at eight bytes at a time, and copy
// only a name that has an upper-case letter.

// Per-byte constants for the eight-at-a-time scan.
const (
	eachByte   = 0x0101010101010101
	highBits   = 0x8080808080808080
	belowA     = (0x80 - 'A') * eachByte       // Sets a byte's high bit when its low 7 bits are >= 'A'.
	pastZ      = (0x80 - ('Z' + 1)) * eachByte // Likewise for > 'Z'.
	lowSevenOf = 0x7f7f7f7f7f7f7f7f
)

// hasUpperASCII reports whether s holds a byte from 'A' to 'Z'.
func hasUpperASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		b := s[i : i+8] // Bounds known, so the eight loads below become one.
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		low := w & lowSevenOf // No carry can cross a byte: at most 0x7f + 0x3f.
		// A byte is upper case when its own high bit is clear, and its low
		// seven bits are >= 'A' but not > 'Z'.
		if (low+belowA)&^(low+pastZ)&^w&highBits != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

// lowerASCII lowercases the ASCII letters of s (keys, so lookups are
// case-insensitive; names of mixed-case queries). Kubernetes names are
// lowercase already; this only guards hand-written records and 0x20
// resolvers.
func lowerASCII(s string) string {
	if !hasUpperASCII(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
