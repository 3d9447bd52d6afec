// Package msg is the SkyDNS record format shared by kube2sky (the writer)
// and skydns (the reader): the JSON value stored under each etcd key, the
// mapping between DNS names and etcd keys, and the record-hash label that
// kube2sky uses as the leaf name.
//
// It deliberately imports neither the etcd client nor client-go, so both
// binaries can depend on it without pulling in the other's world.
package msg

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"strings"
)

// Service is the JSON value of one SkyDNS record. Field order and tags are
// those of SkyDNS 2.5's msg.Service: kube2sky's record-hash labels are the
// FNV-32a of exactly these marshalled bytes, so reordering a field would
// rename every record in a live cluster.
type Service struct {
	Host        string `json:"host,omitempty"`
	Port        int    `json:"port,omitempty"`
	Priority    int    `json:"priority,omitempty"`
	Weight      int    `json:"weight,omitempty"`
	Text        string `json:"text,omitempty"`
	Mail        bool   `json:"mail,omitempty"` // Be an MX record; Priority becomes the preference.
	TTL         uint32 `json:"ttl,omitempty"`
	TargetStrip int    `json:"targetstrip,omitempty"`
	Group       string `json:"group,omitempty"`

	// Key is the etcd key the value was read from. It is not stored. A
	// holder that knows the record's name may drop it after SetDomain.
	Key string `json:"-"`

	// domain is the DNS name the record lives at, when its holder set it.
	domain string

	// hostIP caches Host parsed as an IP by Unmarshal, because a DNS server
	// asks for it on every answer.
	hostIP net.IP
}

// Marshal returns the exact bytes kube2sky writes for s.
func Marshal(s Service) ([]byte, error) {
	return json.Marshal(s)
}

// Unmarshal parses one etcd value. Unknown fields are ignored, as the
// original did, so a newer writer never breaks an older reader. A value
// that could not be served as it says (see check) is an error.
func Unmarshal(key string, value []byte) (Service, error) {
	var s Service
	if err := json.Unmarshal(value, &s); err != nil {
		return Service{}, fmt.Errorf("record %q: %w", key, err)
	}
	s.Key = key
	s.hostIP = net.ParseIP(s.Host)
	if err := s.check(); err != nil {
		return Service{}, fmt.Errorf("record %q: %w", key, err)
	}
	return s, nil
}

// check finds what no DNS reply could carry: a host that is neither an IP
// nor a domain name (such a target made the whole reply fail to pack), and
// a port, priority or weight outside the 16 bits of SRV and MX fields
// (port 70000 went out as 4464).
func (s *Service) check() error {
	if s.Host != "" && s.hostIP == nil && !isDomainName(s.Host) {
		return fmt.Errorf("host %q is neither an IP address nor a domain name", s.Host)
	}
	for _, f := range []struct {
		name  string
		value int
	}{{"port", s.Port}, {"priority", s.Priority}, {"weight", s.Weight}} {
		if f.value < 0 || f.value > 65535 {
			return fmt.Errorf("%s %d is outside 0-65535", f.name, f.value)
		}
	}
	return nil
}

// maxNameLen is the longest domain name in text form without the root dot
// (255 bytes on the wire).
const maxNameLen = 253

// isDomainName reports whether name is made of labels of 1 to 63 bytes,
// 253 bytes in all, with or without the root dot, and does not end in an
// escape: in a name's text form a backslash escapes the next byte, so in
// `a\` it would escape the root dot a reply adds (`a\.` is still not fully
// qualified), and no reply with the name would pack.
func isDomainName(name string) bool {
	if trailing := len(name) - len(strings.TrimRight(name, `\`)); trailing%2 == 1 {
		return false
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if !isLabel(label) {
			return false
		}
	}
	return true
}

// HashLabel is the record label kube2sky derives from a value: the FNV-32a
// of its bytes in lowercase hex, not zero-padded (so it may be shorter than
// eight characters, as in the legacy pod).
func HashLabel(value []byte) string {
	h := fnv.New32a()
	h.Write(value) // A hash.Hash never returns an error.
	return fmt.Sprintf("%x", h.Sum32())
}

// HostIP returns the host as an IP when it is an IP literal, or nil when it
// is a name (and the record is a CNAME or an SRV target instead).
func (s *Service) HostIP() net.IP {
	if s.hostIP != nil {
		return s.hostIP
	}
	return net.ParseIP(s.Host)
}

// Domain is the DNS name the record lives at: as set by SetDomain, else
// derived from its key.
func (s *Service) Domain() string {
	if s.domain != "" {
		return s.domain
	}
	return Domain(s.Key)
}

// SetDomain records the DNS name the record lives at, so that Domain need
// not derive it from Key: the skydns index sets the name its tree holds
// anyway and drops the key, a string per record.
func (s *Service) SetDomain(name string) { s.domain = name }

// TargetStrip removes n labels from the left of name. Stripping more labels
// than the name has keeps the name whole, as SkyDNS did.
func TargetStrip(name string, n int) string {
	if n <= 0 {
		return name
	}
	offset, end := 0, false
	for i := 0; i < n; i++ {
		offset, end = nextLabel(name, offset)
		if end {
			return name
		}
	}
	return name[offset:]
}

// nextLabel returns the offset just past the label starting at offset, and
// whether name ended before a further label began.
func nextLabel(name string, offset int) (int, bool) {
	i := strings.IndexByte(name[offset:], '.')
	if i < 0 || offset+i+1 >= len(name) {
		return len(name), true
	}
	return offset + i + 1, false
}
