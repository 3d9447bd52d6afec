package msg

import (
	"encoding/json"
	"net"
	"reflect"
	"strings"
	"testing"
)

// The exact bytes and labels of legacy-behaviour §1.5: kube2sky's records
// must hash to the same labels as the 1.2 pod's, or an upgrade would leave
// every old record behind.
func TestMarshalAndHashLabel(t *testing.T) {
	tests := []struct {
		name  string
		svc   Service
		bytes string
		label string
	}{
		{"clusterIP", Service{Host: "1.2.3.4", Priority: 10, Weight: 10, TTL: 30},
			`{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}`, "b882ad2c"},
		{"kubernetes", Service{Host: "10.0.0.1", Priority: 10, Weight: 10, TTL: 30},
			`{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30}`, "f488b1a2"},
		{"endpoint", Service{Host: "10.0.0.2", Priority: 10, Weight: 10, TTL: 30},
			`{"host":"10.0.0.2","priority":10,"weight":10,"ttl":30}`, "d8321f45"},
		{"dns", Service{Host: "10.0.0.10", Priority: 10, Weight: 10, TTL: 30},
			`{"host":"10.0.0.10","priority":10,"weight":10,"ttl":30}`, "5f106532"},
		{"srv", Service{Host: "testservice.default.svc.cluster.local.", Port: 80, Priority: 10, Weight: 10, TTL: 30},
			`{"host":"testservice.default.svc.cluster.local.","port":80,"priority":10,"weight":10,"ttl":30}`, ""},
		{"every field", Service{Host: "h", Port: 1, Priority: 2, Weight: 3, Text: "t", Mail: true, TTL: 4, TargetStrip: 5, Group: "g", Key: "/not/stored"},
			`{"host":"h","port":1,"priority":2,"weight":3,"text":"t","mail":true,"ttl":4,"targetstrip":5,"group":"g"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Marshal(tc.svc)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.bytes {
				t.Fatalf("Marshal = %s, want %s", b, tc.bytes)
			}
			if tc.label != "" && HashLabel(b) != tc.label {
				t.Fatalf("HashLabel = %s, want %s", HashLabel(b), tc.label)
			}
		})
	}
}

func TestHashLabelIsNotPadded(t *testing.T) {
	// Search a few values for a hash with a leading zero nibble: the legacy
	// label drops it, so the label is shorter than eight characters.
	for i := 0; i < 1000; i++ {
		b, _ := json.Marshal(Service{Host: "10.0.0.1", Port: i})
		if l := HashLabel(b); len(l) < 8 {
			return
		}
	}
	t.Fatal("no short label found; HashLabel must not zero-pad")
}

func TestUnmarshalRoundTrip(t *testing.T) {
	in := Service{Host: "a.example.", Port: 53, Priority: 1, Weight: 2, Text: "x", Mail: true, TTL: 9, TargetStrip: 1, Group: "g"}
	b, _ := Marshal(in)
	out, err := Unmarshal("/skydns/test/a", b)
	if err != nil {
		t.Fatal(err)
	}
	in.Key = "/skydns/test/a"
	out.hostIP = nil // A cache of Host, compared through HostIP below.
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
	if _, err := Unmarshal("/k", []byte(`{"host":`)); err == nil {
		t.Fatal("truncated JSON must be an error")
	}
	s, err := Unmarshal("/k", []byte(`{"host":"1.1.1.1","owner":"x"}`))
	if err != nil || s.Host != "1.1.1.1" {
		t.Fatalf("unknown fields must be ignored: %+v, %v", s, err)
	}
	if !s.HostIP().Equal(net.ParseIP("1.1.1.1")) || (&Service{Host: "a.b."}).HostIP() != nil {
		t.Fatalf("HostIP")
	}
}

// Values no reply could carry are errors; everything a cluster writes is not.
func TestUnmarshalChecksWhatARecordCanServe(t *testing.T) {
	tests := []struct {
		value string
		ok    bool
	}{
		{`{"host":"10.0.0.1","port":80,"priority":10,"weight":10,"ttl":30}`, true},
		{`{"host":"2001:db8::1"}`, true},
		{`{"host":"testservice.default.svc.cluster.local."}`, true},
		{`{"host":"server1","port":65535,"priority":65535,"weight":65535}`, true},
		{`{"text":"only text"}`, true},
		{`{"host":"a..b","port":80}`, false},
		{`{"host":".","port":80}`, false},
		{`{"host":"` + strings.Repeat("x", 64) + `.example."}`, false},
		{`{"host":"` + strings.Repeat("abcdefg.", 32) + `"}`, false}, // 256 bytes.
		{`{"host":"a\\"}`, false},                                    // A lone backslash escapes the root dot: FuzzUnmarshal's packing check.
		{`{"host":"a\\\\"}`, true},                                   // An escaped backslash.
		{`{"host":"a\\."}`, true},                                    // An escaped dot.
		{`{"host":"10.0.0.1","port":70000}`, false},
		{`{"host":"10.0.0.1","port":-1}`, false},
		{`{"host":"10.0.0.1","priority":65536}`, false},
		{`{"host":"10.0.0.1","weight":-5}`, false},
	}
	for _, tc := range tests {
		if _, err := Unmarshal("/skydns/test/x", []byte(tc.value)); (err == nil) != tc.ok {
			t.Errorf("Unmarshal(%s): error %v, want ok=%v", tc.value, err, tc.ok)
		}
	}
}

func TestPathAndDomain(t *testing.T) {
	tests := []struct {
		name, prefix, path string
	}{
		{"x.name.ns.svc.cluster.local.", "skydns", "/skydns/local/cluster/svc/ns/name/x"},
		{"b882ad2c._http1._tcp.testservice.default.svc.cluster.local.", "skydns", "/skydns/local/cluster/svc/default/testservice/_tcp/_http1/b882ad2c"},
		{"1.0.0.10.in-addr.arpa.", "skydns", "/skydns/arpa/in-addr/10/0/0/1"},
		{"a.skydns.test.", "other", "/other/test/skydns/a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Path(tc.name, tc.prefix); got != tc.path {
				t.Fatalf("Path = %s, want %s", got, tc.path)
			}
			if got := Domain(tc.path); got != tc.name {
				t.Fatalf("Domain = %s, want %s", got, tc.name)
			}
		})
	}
	if got := Path("UppeR.Skydns.Test.", "skydns"); got != "/skydns/test/skydns/upper" {
		t.Fatalf("Path must lowercase: %s", got)
	}
}

func TestKeySegments(t *testing.T) {
	tests := []struct {
		key  string
		want []string
		ok   bool
	}{
		{"/skydns/local/cluster/x", []string{"local", "cluster", "x"}, true},
		{"/skydns/", nil, false},
		{"/skydns", nil, false},
		{"/other/local", nil, false},
		{"/skydns/local//x", nil, false},
		{"/skydns/local/", nil, false},
		{"/skydns/local/cluster/svc/web.default", nil, false}, // A dot: no name maps here.
		{"/skydns/local/" + strings.Repeat("x", 64), nil, false},
		{"/skydns/local/" + strings.Repeat("x", 63), []string{"local", strings.Repeat("x", 63)}, true},
	}
	for _, tc := range tests {
		got, ok := KeySegments(tc.key, "skydns")
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("KeySegments(%q) = %v, %v; want %v, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
}

func TestTargetStrip(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want string
	}{
		{"x.bar.skydns.test.", 0, "x.bar.skydns.test."},
		{"x.bar.skydns.test.", 1, "bar.skydns.test."},
		{"x.bar.skydns.test.", 2, "skydns.test."},
		{"x.bar.skydns.test.", 4, "x.bar.skydns.test."},
		{"x.bar.skydns.test.", 9, "x.bar.skydns.test."},
	}
	for _, tc := range tests {
		if got := TargetStrip(tc.name, tc.n); got != tc.want {
			t.Errorf("TargetStrip(%q, %d) = %q, want %q", tc.name, tc.n, got, tc.want)
		}
	}
}
