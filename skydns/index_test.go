package skydns

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"go.etcd.io/etcd/api/v3/mvccpb"

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

// A PTR record comes in a list before the service it names (arpa sorts
// first); once the load ends its host shares the name the index holds for
// that service, on a first list and on a relist alike. On a relist the
// index may be answering from the record already, so it gets a copy and
// the record a reader may hold is left as it was.
func TestLoadSharesHostNames(t *testing.T) {
	const ptrKey, target = "/skydns/arpa/in-addr/10/0/0/1", "web.ns.svc.cluster.local."
	for _, relist := range []bool{false, true} {
		t.Run(map[bool]string{false: "first list", true: "relist"}[relist], func(t *testing.T) {
			ix := NewIndex("skydns")
			if relist {
				ix.Replace([]msg.Service{{Key: "/skydns/local/cluster/svc/other/x", Host: "10.0.0.9"}})
			}
			l := ix.NewLoad()
			l.Add(msg.Service{Key: ptrKey, Host: target}, 7)
			var answered *record
			if relist {
				answered = must(ix.Records("1.0.0.10.in-addr.arpa.", true))[0]
			}
			l.Add(msg.Service{Key: "/skydns/local/cluster/svc/ns/web/x", Host: "10.0.0.1"}, 8)
			if added, removed := l.Commit(); added != 2 || removed != btoi(relist) {
				t.Fatalf("Commit = %d put, %d removed; want 2, %d", added, removed, btoi(relist))
			}
			ptr := must(ix.Records("1.0.0.10.in-addr.arpa.", true))[0]
			ix.mu.RLock()
			name := ix.tree.byName[target].name
			ix.mu.RUnlock()
			if ptr.Host != target || unsafe.StringData(ptr.Host) != unsafe.StringData(name) {
				t.Fatalf("PTR host %q does not share the service's name", ptr.Host)
			}
			if relist && (answered == ptr || unsafe.StringData(answered.Host) == unsafe.StringData(name)) {
				t.Fatal("the record the index answered with during the relist was changed")
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Keys that differ only in case share a node, and a relist ends with the
// record of the one the list reads last (the lowercase key sorts last), as
// a first list does. Neither is kept as unchanged: each finds the other's
// record at the node, so both are put again, and while the relist runs
// the name may answer with either value, both of them in etcd.
func TestRelistKeepsCaseVariants(t *testing.T) {
	w, ix := pagedWatcher(nil, 0)
	kvs := []*mvccpb.KeyValue{kv("/skydns/test/Web", `{"host":"10.0.0.1"}`), kv("/skydns/test/web", `{"host":"10.0.0.2"}`)}
	for _, list := range []string{"first list", "relist"} {
		if _, removed := load(w, ix, kvs).Commit(); removed != 0 {
			t.Fatalf("%s removed %d records", list, removed)
		}
		if got := must(ix.Records("web.test.", true)); len(got) != 1 || got[0].Host != "10.0.0.2" || ix.Len() != 1 {
			t.Fatalf("after the %s: %v, %d records; want the lowercase key's 10.0.0.2 alone", list, hosts(got), ix.Len())
		}
	}
}

// A node and a record each fill one 64-byte size class: a field more
// would move every one of them (about 700,000 at 100,000 services) to the
// 80-byte class.
func TestIndexValuesFitTheirSizeClass(t *testing.T) {
	if n, r := unsafe.Sizeof(node{}), unsafe.Sizeof(record{}); n > 64 || r > 64 {
		t.Fatalf("node %d bytes, record %d; want at most 64 each", n, r)
	}
}

// The name a relist looks a key up by is the one the index files the key
// under: KeySegments reversed, lowercase, and no name where KeySegments
// finds none.
func TestAppendKeyNameAgreesWithKeySegments(t *testing.T) {
	keys := []string{
		"/skydns/local/cluster/svc/ns/web/x", "/skydns/test/Web", "/skydns/ARPA/in-addr/10/0/0/1", "/skydns/a",
		"/skydns/", "/skydns", "/skydnsx/a", "/other/a", "skydns/a", "/skydns/a//b", "/skydns/a/", "/skydns/web.default/x",
		"/skydns/" + strings.Repeat("a", 63), "/skydns/" + strings.Repeat("a", 64) + "/b", "/skydns/_tcp/_http/x",
	}
	for _, kv := range kube2skyKVs(20) {
		keys = append(keys, string(kv.Key))
	}
	for _, key := range keys {
		segs, wantOK := msg.KeySegments(lowerASCII(key), "skydns")
		want := ""
		if wantOK {
			slices.Reverse(segs)
			want = strings.Join(segs, ".") + "."
		}
		name, upper, ok := appendKeyName([]byte("junk"), []byte(key), "skydns")
		if ok != wantOK || (ok && string(name) != "junk"+want) || (ok && upper != hasUpperASCII(key)) {
			t.Errorf("%q: %q upper %v ok %v; want %q upper %v ok %v", key, name, upper, ok, "junk"+want, hasUpperASCII(key), wantOK)
		}
	}
}

// Keep, which a relist calls for every key, allocates nothing.
func TestKeepAllocatesNothing(t *testing.T) {
	w, ix := pagedWatcher(nil, 0)
	kvs := kube2skyKVs(20)
	load(w, ix, kvs).Commit()
	l := ix.NewLoad()
	l.Keep(kvs[0].Key, kvs[0].ModRevision) // Grows the scratch buffer.
	if allocs := testing.AllocsPerRun(10, func() {
		for _, kv := range kvs {
			if !l.Keep(kv.Key, kv.ModRevision) {
				t.Fatalf("%s not kept", kv.Key)
			}
		}
	}); allocs != 0 {
		t.Fatalf("Keep allocated %v times for %d keys", allocs, len(kvs))
	}
}

// TestDeepestOnPathProbesAsTheWalkFinds checks the name map's suffix
// probes (deepestOnPath) against a walk down the children (walkDown)
// for names that exist, that leave the tree at every depth, and odd ones:
// no trailing dot, the root, empty labels, an escaped dot, a label that
// is a record's name but not a node of its own.
func TestDeepestOnPathProbesAsTheWalkFinds(t *testing.T) {
	ix := loadIndex(t, map[string]string{
		"a.ns.svc.skydns.test.":            `{"host":"10.0.0.1"}`,
		"b.ns.svc.skydns.test.":            `{"host":"10.0.0.2"}`,
		"x.b.ns.svc.skydns.test.":          `{"host":"10.0.0.3"}`,
		"1.2.3.10.in-addr.arpa.":           `{"host":"a.ns.svc.skydns.test."}`,
		"_http._tcp.a.ns.svc.skydns.test.": `{"host":"a.ns.svc.skydns.test.","port":80}`,
	})
	names := []string{
		"a.ns.svc.skydns.test.", "x.b.ns.svc.skydns.test.", "missing.ns.svc.skydns.test.",
		"a.ns.svc.skydns.test.ns.svc.skydns.test.", "a.ns.svc.svc.skydns.test.", "q.skydns.test.",
		"test.", "nope.", ".", "", "a.ns.svc.skydns.test", "a..svc.skydns.test.", "a\\.ns.svc.skydns.test.",
		"y.x.b.ns.svc.skydns.test.", "_tcp.a.ns.svc.skydns.test.", "9.1.2.3.10.in-addr.arpa.",
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for _, name := range names {
		if got, want := ix.tree.deepestOnPath(name), ix.tree.walkDown(name); got != want {
			t.Errorf("deepestOnPath(%q) = %q; the walk finds %q", name, got.name, want.name)
		}
	}
}

// walkDown is the deepest existing node on name's path, found by walking
// down the children label by label: what deepestOnPath did before it
// probed the name map.
func (t *tree) walkDown(name string) *node {
	labels := msg.Labels(name)
	n := &t.root
	for i := len(labels) - 1; i >= 0; i-- {
		child := n.child(labels[i])
		if child == nil {
			break
		}
		n = child
	}
	return n
}
