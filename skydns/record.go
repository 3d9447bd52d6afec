package skydns

import (
	"net"

	"github.com/skypod/skypod/skydns/msg"
)

// record is what the index keeps of one msg.Service: the fields a reply is
// made of, in the types DNS gives them, and the etcd revision it was
// written at. A msg.Service is the JSON value, 144 bytes before its
// strings plus a 16-byte parsed IP; a record is 64 (its size class) with
// an IPv4 host held inline, and at 290,000
// records (100,000 services) that difference is most of what the index
// saves. Port, priority and weight fit 16 bits because msg.Unmarshal
// rejects any other value; what few records carry (text, a group, an IPv6
// host, a mixed-case key) sits out of line.
type record struct {
	Host   string
	domain string // The name the record lives at: its node's name when the key was lowercase.
	extra  *recordExtra
	TTL    uint32
	ip4    [4]byte // The host as an IPv4 address, when flags has hostIPv4.
	rev    int64   // The etcd revision the value was written at; 0 if unknown. A relist keeps a record it finds at the same one.

	Port, Priority, Weight uint16
	TargetStrip            uint8 // Clamped: a name has at most 127 labels, and stripping more keeps it whole.
	flags                  uint8
}

// recordExtra holds the fields most records leave empty.
type recordExtra struct {
	text, group string
	ip6         net.IP // The host as an IPv6 address.
	key         string // The etcd key, when it is not all lowercase (see Load.Keep).
}

const (
	hostIPv4 uint8 = 1 << iota
	mail           // An MX record: Priority is the preference.
)

// newRecord converts s, written at revision rev, whose key's lowercase
// form is the node named name (or "" when the record is not held by a node
// of that name), to what the index keeps.
func newRecord(s *msg.Service, name string, rev int64) *record {
	r := &record{
		Host: s.Host, TTL: s.TTL, rev: rev,
		Port: uint16(s.Port), Priority: uint16(s.Priority), Weight: uint16(s.Weight), // Checked by msg.Unmarshal.
		TargetStrip: uint8(min(max(s.TargetStrip, 0), 255)),
	}
	if s.Mail {
		r.flags |= mail
	}
	var x recordExtra
	if ip := s.HostIP(); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			r.ip4 = [4]byte(v4)
			r.flags |= hostIPv4
		} else {
			x.ip6 = ip
		}
	}
	x.text, x.group = s.Text, s.Group
	if name != "" && s.Key != "" && lowerASCII(s.Key) == s.Key {
		r.domain = name // The name the index holds anyway says it all.
	} else {
		r.domain = s.Domain()
		x.key = s.Key
	}
	if x.text != "" || x.group != "" || x.ip6 != nil || x.key != "" {
		r.extra = &x
	}
	return r
}

// HostIP returns the host as an IP when it is an IP literal, or nil when it
// is a name. An IPv4 address is a view of the record's own bytes: records
// are never changed once an index holds them, and callers only read it.
func (r *record) HostIP() net.IP {
	if r.flags&hostIPv4 != 0 {
		return net.IP(r.ip4[:])
	}
	if r.extra != nil {
		return r.extra.ip6
	}
	return nil
}

// Domain is the DNS name the record lives at.
func (r *record) Domain() string { return r.domain }

// Mail reports whether the record is an MX record.
func (r *record) Mail() bool { return r.flags&mail != 0 }

// Text is the record's TXT text, if any.
func (r *record) Text() string {
	if r.extra == nil {
		return ""
	}
	return r.extra.text
}

// Group is the record's SkyDNS group, if any.
func (r *record) Group() string {
	if r.extra == nil {
		return ""
	}
	return r.extra.group
}

// key is the record's etcd key when it was not all lowercase, else "".
func (r *record) key() string {
	if r.extra == nil {
		return ""
	}
	return r.extra.key
}

// service is the record as a msg.Service again, for comparing and
// printing (tests, debugging); nothing on the query path needs it.
func (r *record) service() msg.Service {
	return msg.Service{
		Host: r.Host, Port: int(r.Port), Priority: int(r.Priority), Weight: int(r.Weight),
		Text: r.Text(), Mail: r.Mail(), TTL: r.TTL, TargetStrip: int(r.TargetStrip), Group: r.Group(),
	}
}
