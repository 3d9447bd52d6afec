package skydns

import (
	"errors"
	"slices"
	"testing"

	"github.com/skypod/skypod/skydns/msg"
)

func hosts(sx []*record) []string {
	out := make([]string, len(sx))
	for i, s := range sx {
		out[i] = s.Host
	}
	slices.Sort(out)
	return out
}

func put(ix *Index, key, host string) {
	ix.Put(msg.Service{Key: key, Host: host})
}

func TestIndexPutDeletePrunes(t *testing.T) {
	ix := NewIndex("skydns")
	if _, err := ix.Records("a.test.", false); !errors.Is(err, errNotLoaded) {
		t.Fatalf("before load: %v", err)
	}
	ix.Replace(nil)
	put(ix, "/skydns/test/b/a", "10.0.0.1")
	put(ix, "/skydns/test/b/c", "10.0.0.2")
	put(ix, "/skydns/test/b/a", "10.0.0.3") // Replaces, not adds.
	if ix.Len() != 2 {
		t.Fatalf("Len = %d", ix.Len())
	}
	if got := hosts(must(ix.Records("b.test.", false))); !slices.Equal(got, []string{"10.0.0.2", "10.0.0.3"}) {
		t.Fatalf("directory: %v", got)
	}
	ix.Delete("/skydns/test/b/a")
	ix.Delete("/skydns/test/b/c")
	ix.Delete("/skydns/test/b/nothing")
	if ix.Len() != 0 {
		t.Fatalf("Len after delete = %d", ix.Len())
	}
	// The emptied directories are gone too: the name no longer exists.
	if _, err := ix.Records("b.test.", false); !errors.Is(err, errNameNotFound) {
		t.Fatalf("pruned directory: %v", err)
	}
}

func TestIndexHiddenAndWildcard(t *testing.T) {
	ix := NewIndex("skydns")
	ix.Replace([]msg.Service{
		{Key: "/skydns/local/cluster/svc/ns/web/h1", Host: "10.0.0.1"},
		{Key: "/skydns/local/cluster/svc/ns/web/_tcp/_http/h1", Host: "web.ns.svc.cluster.local."},
		{Key: "/skydns/local/cluster/svc/ns/db/h2", Host: "10.0.0.2"},
		{Key: "/skydns/local/cluster/svc/other/web/h3", Host: "10.0.0.3"},
		{Key: "/skydns/Local/Cluster/UPPER", Host: "10.0.0.9"},
	})
	tests := []struct {
		name  string
		exact bool
		want  []string
	}{
		{"web.ns.svc.cluster.local.", false, []string{"10.0.0.1"}}, // _tcp stays hidden.
		{"_http._tcp.web.ns.svc.cluster.local.", false, []string{"web.ns.svc.cluster.local."}},
		{"_tcp.web.ns.svc.cluster.local.", false, []string{}},
		{"ns.svc.cluster.local.", false, []string{"10.0.0.1", "10.0.0.2"}},
		{"*.ns.svc.cluster.local.", false, []string{"10.0.0.1", "10.0.0.2"}},
		{"web.*.svc.cluster.local.", false, []string{"10.0.0.1", "10.0.0.3"}},
		{"web.any.svc.cluster.local.", false, []string{"10.0.0.1", "10.0.0.3"}},
		{"h1.web.*.svc.cluster.local.", false, []string{"10.0.0.1"}},
		{"web.ns.svc.cluster.local.", true, []string{}},
		{"h1.web.ns.svc.cluster.local.", true, []string{"10.0.0.1"}},
		{"upper.cluster.local.", false, []string{"10.0.0.9"}},
	}
	for _, tc := range tests {
		got, err := ix.Records(tc.name, tc.exact)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if h := hosts(got); !slices.Equal(h, tc.want) {
			t.Errorf("%s exact=%v: %v, want %v", tc.name, tc.exact, h, tc.want)
		}
	}
	if _, err := ix.Records("x.*.nowhere.", false); !errors.Is(err, errNameNotFound) {
		t.Errorf("wildcard under a missing directory: %v", err)
	}
}

// A key may hold a value and have children in etcd v3; both are answered.
func TestIndexValueAndChildren(t *testing.T) {
	ix := NewIndex("skydns")
	ix.Replace([]msg.Service{
		{Key: "/skydns/test/a", Host: "10.0.0.1"},
		{Key: "/skydns/test/a/b", Host: "10.0.0.2"},
	})
	if got := hosts(must(ix.Records("a.test.", false))); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatal(got)
	}
	ix.Delete("/skydns/test/a")
	if got := hosts(must(ix.Records("b.a.test.", false))); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatal(got)
	}
}

func must(sx []*record, err error) []*record {
	if err != nil {
		panic(err)
	}
	return sx
}

// The name map and the tree must agree after any sequence of writes.
func TestIndexNameMapFollowsTree(t *testing.T) {
	ix := NewIndex("skydns")
	ix.Replace(nil)
	put(ix, "/skydns/local/cluster/svc/ns/a/x", "10.0.0.1")
	put(ix, "/skydns/local/cluster/svc/ns/b/y", "10.0.0.2")
	ix.Delete("/skydns/local/cluster/svc/ns/a/x")
	if _, err := ix.Records("a.ns.svc.cluster.local.", false); !errors.Is(err, errNameNotFound) {
		t.Fatalf("pruned name still found: %v", err)
	}
	if got := hosts(must(ix.Records("NS.svc.cluster.local", false))); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("directory after delete: %v", got)
	}
	if got := hosts(must(ix.Records("b.aNy.svc.cluster.local.", false))); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("mixed-case wildcard: %v", got)
	}
	if n := len(ix.tree.byName); n != 6 {
		t.Fatalf("name map holds %d nodes, want 6 (local cluster svc ns b y)", n)
	}
}

// A key whose segment is not a label (here "web.default") maps to no name:
// the index ignores it, so it neither answers for web.default.svc.test. nor
// hides that name when deleted.
func TestIndexIgnoresKeysThatAreNotNames(t *testing.T) {
	ix := NewIndex("skydns")
	ix.Replace([]msg.Service{{Key: "/skydns/test/svc/web.default", Host: "10.66.66.66"}, {Key: "/skydns/test/svc/default/web/x", Host: "10.0.0.1"}})
	put(ix, "/skydns/test/svc/web.default", "10.66.66.67")
	if got := hosts(must(ix.Records("web.default.svc.test.", false))); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("answers %v, want the real name's record alone", got)
	}
	ix.Delete("/skydns/test/svc/web.default")
	if got := hosts(must(ix.Records("web.default.svc.test.", false))); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("after deleting the dotted key: %v", got)
	}
	if ix.Len() != 1 {
		t.Fatalf("Len = %d, want 1", ix.Len())
	}
}
