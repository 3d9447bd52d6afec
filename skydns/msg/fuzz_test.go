package msg

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzUnmarshal decodes arbitrary values: whatever it accepts, skydns
// must be able to serve. The host is an IP or a name that packs as a
// record's target, and the 16-bit fields fit 16 bits.
func FuzzUnmarshal(f *testing.F) {
	for _, v := range []string{
		`{"host":"10.0.0.1","port":80,"priority":10,"weight":10,"ttl":30}`, `{"host":"2001:db8::1"}`,
		`{"host":"testservice.default.svc.cluster.local.","port":80}`, `{"text":"t","mail":true,"targetstrip":1,"group":"g"}`,
		`{"host":"a\\.b"}`, `{"host":"a\\"}`, `{"host":"a..b"}`, `{"host":"x","port":65536}`, `{"host":1}`, `[]`, `null`,
	} {
		f.Add("/skydns/test/x", []byte(v))
	}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		s, err := Unmarshal(key, value)
		if err != nil {
			return
		}
		if s.Host != "" && s.HostIP() == nil {
			m := new(dns.Msg)
			m.Answer = []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: dns.Fqdn(s.Host)}}
			if _, err := m.Pack(); err != nil {
				t.Fatalf("accepted host %q does not pack as a target: %v", s.Host, err)
			}
		}
		for _, v := range []int{s.Port, s.Priority, s.Weight} {
			if v < 0 || v > 65535 {
				t.Fatalf("accepted %+v: a 16-bit field is %d", s, v)
			}
		}
		// What kube2sky would write back of it decodes to the same record.
		b, _ := Marshal(s)
		again, err := Unmarshal(key, b)
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip of %+v: %+v, %v", s, again, err)
		}
	})
}

// FuzzKeySegments checks that a key is accepted only when each segment is
// one DNS label, and then is exactly its segments under the prefix.
func FuzzKeySegments(f *testing.F) {
	for _, k := range []string{"/skydns/local/cluster/x", "/skydns/", "/skydns/a//b", "/skydns/a.b/c", "/skydns/" + strings.Repeat("x", 64), "/other/a"} {
		f.Add(k, DefaultPrefix)
	}
	f.Fuzz(func(t *testing.T, key, prefix string) {
		segments, ok := KeySegments(key, prefix)
		if !ok {
			return
		}
		for _, s := range segments {
			if s == "" || len(s) > MaxLabelLen || strings.ContainsAny(s, "./") {
				t.Fatalf("KeySegments(%q, %q) accepted segment %q", key, prefix, s)
			}
		}
		if got := "/" + prefix + "/" + strings.Join(segments, "/"); got != key {
			t.Fatalf("KeySegments(%q, %q) = %q, which is the key %q", key, prefix, segments, got)
		}
	})
}

// FuzzPathDomain checks the name ↔ key mapping both ways: Domain undoes
// Path up to case, the key of a name of DNS labels is accepted with those
// labels, and TargetStrip only ever cuts whole labels off the front.
func FuzzPathDomain(f *testing.F) {
	for _, n := range []string{"x.web.default.svc.cluster.local.", "1.0.0.10.in-addr.arpa.", "UppeR.Skydns.Test", ".", "", "a..b.", "a/b.c."} {
		f.Add(n, DefaultPrefix, 1)
	}
	f.Fuzz(func(t *testing.T, name, prefix string, strip int) {
		key := Path(name, prefix)
		labels := Labels(name)
		// A slash in a name would make segments of its own: names come from
		// the wire, where skydns never maps them to keys, and from
		// Kubernetes objects, whose names have none.
		if validPrefix(prefix) && !strings.Contains(name, "/") {
			checkKeyOfName(t, name, prefix, key, labels)
		}
		if stripped := TargetStrip(name, strip); stripped != name && !strings.HasSuffix(name, "."+stripped) {
			t.Fatalf("TargetStrip(%q, %d) = %q, not a suffix of whole labels", name, strip, stripped)
		}
	})
}

// checkKeyOfName checks key, the key of name: its domain is the name in
// lowercase, and it is accepted, with the name's labels as segments,
// exactly when those are DNS labels.
func checkKeyOfName(t *testing.T, name, prefix, key string, labels []string) {
	t.Helper()
	if got, want := Domain(key), strings.Join(labels, ".")+"."; got != want && !slices.Contains(labels, "") {
		t.Fatalf("Domain(Path(%q)) = %q, want %q", name, got, want)
	}
	segments, ok := KeySegments(key, prefix)
	slices.Reverse(segments)
	if want := len(labels) > 0 && allLabels(labels); ok != want || ok && !slices.Equal(segments, labels) {
		t.Fatalf("KeySegments(Path(%q), %q) = %q, %v; labels %q", name, prefix, segments, ok, labels)
	}
}

// validPrefix is what a prefix is: one key segment.
func validPrefix(prefix string) bool { return prefix != "" && !strings.Contains(prefix, "/") }

// allLabels reports whether every label is a DNS label.
func allLabels(labels []string) bool {
	for _, l := range labels {
		if l == "" || len(l) > MaxLabelLen {
			return false
		}
	}
	return true
}
