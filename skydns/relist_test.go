package skydns

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/skypod/skypod/skydns/msg"
)

// Keys of kube2skyKVs(20) that the relist tests change: an address record
// of a ClusterIP service, one of a headless service's five, and the name
// of a service with nothing below it but its own record.
const (
	relistSvcKey      = "/skydns/local/cluster/svc/ns-0/svc-11/"
	relistHeadlessDir = "/skydns/local/cluster/svc/ns-0/svc-0/"
	relistNewKey      = "/skydns/local/cluster/svc/ns-0/new/x"
)

// keyUnder is the first key of kvs under dir.
func keyUnder(t *testing.T, kvs []*mvccpb.KeyValue, dir string) string {
	t.Helper()
	for _, kv := range kvs {
		if strings.HasPrefix(string(kv.Key), dir) {
			return string(kv.Key)
		}
	}
	t.Fatalf("no key under %s", dir)
	return ""
}

// versions is the Version of every name ix holds, and of missing, a name
// it does not hold, by the name whose subtree each stands for: the name
// itself, or for missing its deepest existing ancestor.
func versions(t *testing.T, ix *Index, missing string) map[string]Version {
	t.Helper()
	ix.mu.RLock()
	names := slices.Collect(maps.Keys(ix.tree.byName))
	ancestor := ix.tree.deepestOnPath(missing).name
	ix.mu.RUnlock()
	out := map[string]Version{}
	for _, name := range names {
		_, out[name], _ = ix.VersionedRecords(name, false, nil)
	}
	_, out[ancestor], _ = ix.VersionedRecords(missing, false, nil)
	return out
}

// below is every key of kvs at or below name, with its value and revision:
// what a Version of name stands for.
func below(kvs []*mvccpb.KeyValue, name string) map[string]string {
	path := msg.Path(name, "skydns")
	out := map[string]string{}
	for _, kv := range kvs {
		if k := lowerASCII(string(kv.Key)); k == path || strings.HasPrefix(k, path+"/") {
			out[k] = fmt.Sprintf("%d %s", kv.ModRevision, kv.Value)
		}
	}
	return out
}

// A relist brings the index to etcd's records in place: afterwards it is
// the index a first list of the new revision builds. Records of keys not
// written since are the same records (shared, not parsed again), and the
// Version of a name stays current exactly when nothing at or below it
// changed, so unchanged names keep their packed answers through a relist
// and changed or removed ones do not.
func TestRelistAppliesTheDifference(t *testing.T) {
	cases := []struct {
		name   string
		change func(e *revEtcd, kvs []*mvccpb.KeyValue)
	}{
		{"nothing changed", func(*revEtcd, []*mvccpb.KeyValue) {}},
		{"a key added", func(e *revEtcd, _ []*mvccpb.KeyValue) { e.put(relistNewKey, `{"host":"10.9.9.8"}`) }},
		{"a key rewritten", func(e *revEtcd, kvs []*mvccpb.KeyValue) {
			e.put(keyUnder(t, kvs, relistSvcKey), `{"host":"10.9.9.9"}`)
		}},
		{"a key rewritten with the same value", func(e *revEtcd, kvs []*mvccpb.KeyValue) {
			key := keyUnder(t, kvs, relistSvcKey)
			for _, kv := range kvs {
				if string(kv.Key) == key {
					e.put(key, string(kv.Value))
				}
			}
		}},
		{"a key deleted", func(e *revEtcd, kvs []*mvccpb.KeyValue) { e.del(keyUnder(t, kvs, relistSvcKey)) }},
		{"a headless service's endpoints deleted", func(e *revEtcd, kvs []*mvccpb.KeyValue) {
			for _, kv := range kvs {
				if strings.HasPrefix(string(kv.Key), relistHeadlessDir) {
					e.del(string(kv.Key))
				}
			}
		}},
		{"a value made malformed", func(e *revEtcd, kvs []*mvccpb.KeyValue) { e.put(keyUnder(t, kvs, relistSvcKey), `{`) }},
		{"keys added, rewritten and deleted", func(e *revEtcd, kvs []*mvccpb.KeyValue) {
			e.put(relistNewKey, `{"host":"10.9.9.8"}`)
			e.put(keyUnder(t, kvs, relistSvcKey), `{"host":"10.9.9.9"}`)
			e.del(keyUnder(t, kvs, relistHeadlessDir))
			e.del(string(kvs[0].Key))
		}},
		{"everything deleted", func(e *revEtcd, kvs []*mvccpb.KeyValue) {
			for _, kv := range kvs {
				e.del(string(kv.Key))
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kvs := kube2skyKVs(20)
			etcd := newRevEtcd(kvs)
			w, ix := pagedWatcher(etcd, 7)
			first, err := w.list(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			before := versions(t, ix, "x.new.ns-0.svc.cluster.local.") // Added by relistNewKey.
			records := map[string]*record{}
			for _, kv := range kvs {
				records[string(kv.Key)] = valueAt(t, ix, string(kv.Key))
			}
			tc.change(etcd, kvs)
			rev, err := w.list(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			sameIndex(t, ix, indexOf(t, etcd.snapshot(rev)))
			old, now := etcd.snapshot(first), etcd.snapshot(rev)
			for _, kv := range now {
				if r, ok := records[string(kv.Key)]; ok && kv.ModRevision == 1 && valueAt(t, ix, string(kv.Key)) != r {
					t.Errorf("%s: not written since the first list, but its record was parsed again", kv.Key)
				}
			}
			for name, v := range before {
				if unchanged := maps.Equal(below(old, name), below(now, name)); v.Current() != unchanged {
					t.Errorf("%s: Version current %v after the relist, want %v", name, v.Current(), unchanged)
				}
			}
		})
	}
}

// A relist that etcd's compaction cuts short starts over at a newer
// revision, in the same index, and ends as a first list of that revision
// would: a key only the abandoned attempt saw, deleted before the restart,
// goes; so do keys deleted while either attempt listed, before its
// revision.
func TestRelistRestartedAfterCompaction(t *testing.T) {
	cases := []struct {
		name   string
		before func(e *revEtcd, kvs []*mvccpb.KeyValue) // Between the first list and the relist.
		during func(e *revEtcd, kvs []*mvccpb.KeyValue) // On the abandoned attempt's third page, then compacted.
	}{
		{"a key only the abandoned attempt saw",
			func(e *revEtcd, _ []*mvccpb.KeyValue) { e.put("/skydns/a/x", `{"host":"10.9.9.1"}`) }, // The first key of all.
			func(e *revEtcd, _ []*mvccpb.KeyValue) { e.del("/skydns/a/x") }},
		{"a key the abandoned attempt rewrote, deleted before the restart",
			func(e *revEtcd, kvs []*mvccpb.KeyValue) { e.put(string(kvs[0].Key), `{"host":"10.9.9.2"}`) },
			func(e *revEtcd, kvs []*mvccpb.KeyValue) { e.del(string(kvs[0].Key)) }},
		{"a key deleted after the abandoned attempt read it",
			func(*revEtcd, []*mvccpb.KeyValue) {},
			func(e *revEtcd, kvs []*mvccpb.KeyValue) { e.del(string(kvs[1].Key)) }},
		{"a key deleted before the abandoned attempt reached it",
			func(*revEtcd, []*mvccpb.KeyValue) {},
			func(e *revEtcd, kvs []*mvccpb.KeyValue) { e.del(string(kvs[len(kvs)-1].Key)) }},
		{"keys added and rewritten while listing",
			func(*revEtcd, []*mvccpb.KeyValue) {},
			func(e *revEtcd, kvs []*mvccpb.KeyValue) {
				e.put(relistNewKey, `{"host":"10.9.9.8"}`)
				e.put(string(kvs[2].Key), `{"host":"10.9.9.9"}`)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kvs := kube2skyKVs(20)
			etcd := newRevEtcd(kvs)
			w, ix := pagedWatcher(etcd, 7)
			if _, err := w.list(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.before(etcd, kvs)
			third, lists := etcd.pages+2, etcd.firstPages
			etcd.beforePage = func(page int) {
				if page == third {
					tc.during(etcd, kvs)
					etcd.compact()
				}
			}
			rev, err := w.list(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if etcd.firstPages-lists != 2 {
				t.Fatalf("the relist started %d times, want twice", etcd.firstPages-lists)
			}
			sameIndex(t, ix, indexOf(t, etcd.snapshot(rev)))
		})
	}
}

// Packed answers follow a relist exactly: a name it changed or removed is
// answered anew, a name it added is no longer NXDOMAIN, and a name it left
// alone is still served packed.
func TestRelistRetiresPackedAnswers(t *testing.T) {
	key := func(name string) string { return msg.Path(name, "skydns") }
	records := map[string]string{
		"a.same.skydns.test.":    `{"host":"10.1.0.1"}`,
		"a.changed.skydns.test.": `{"host":"10.1.0.2"}`,
		"a.removed.skydns.test.": `{"host":"10.1.0.3"}`,
		"a.two.skydns.test.":     `{"host":"10.1.0.4"}`,
		"b.two.skydns.test.":     `{"host":"10.1.0.5"}`,
	}
	var kvs []*mvccpb.KeyValue
	for _, name := range slices.Sorted(maps.Keys(records)) {
		kvs = append(kvs, kv(key(name), records[name]))
	}
	etcd := newRevEtcd(kvs)
	w, ix := pagedWatcher(etcd, 2)
	if _, err := w.list(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := newTestHandler(t, newTestConfig(), ix)
	asked := []string{"same.skydns.test.", "changed.skydns.test.", "removed.skydns.test.", "two.skydns.test.", "added.skydns.test."}
	for _, name := range asked {
		for range 2 { // The second is served packed.
			serve(t, h, question(name, dns.TypeA, 1), false)
		}
	}
	etcd.put(key("a.changed.skydns.test."), `{"host":"10.2.0.2"}`)
	etcd.del(key("a.removed.skydns.test."))
	etcd.del(key("b.two.skydns.test."))
	etcd.put(key("a.added.skydns.test."), `{"host":"10.2.0.6"}`)
	if _, err := w.list(context.Background()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		packed bool
		rcode  int
		answer []string
	}{
		{"same.skydns.test.", true, dns.RcodeSuccess, []string{"10.1.0.1"}},
		{"changed.skydns.test.", false, dns.RcodeSuccess, []string{"10.2.0.2"}},
		{"removed.skydns.test.", false, dns.RcodeNameError, nil},
		{"two.skydns.test.", false, dns.RcodeSuccess, []string{"10.1.0.4"}},
		{"added.skydns.test.", false, dns.RcodeSuccess, []string{"10.2.0.6"}},
	}
	for _, tc := range cases {
		hits := counted(h.metrics.lookups, "result", "hit")
		m := unpack(t, serve(t, h, question(tc.name, dns.TypeA, 2), false))
		if packed := counted(h.metrics.lookups, "result", "hit") > hits; packed != tc.packed {
			t.Errorf("%s: served packed %v, want %v", tc.name, packed, tc.packed)
		}
		var got []string
		for _, rr := range m.Answer {
			got = append(got, rr.(*dns.A).A.String())
		}
		if m.Rcode != tc.rcode || !slices.Equal(got, tc.answer) {
			t.Errorf("%s: %s %v, want %s %v", tc.name, dns.RcodeToString[m.Rcode], got, dns.RcodeToString[tc.rcode], tc.answer)
		}
	}
}

// Queries racing a relist that rewrites every record get, for each name,
// its old record or its new one, whole: never a record of another name,
// a mix of two, or nothing (run with -race).
func TestRelistAnswersWhileApplying(t *testing.T) {
	const services = 200
	value := func(i, round int) string { return fmt.Sprintf(`{"host":"10.%d.%d.%d"}`, round, i>>8, i&255) }
	name := func(i int) string { return fmt.Sprintf("svc-%d.skydns.test.", i) }
	var kvs []*mvccpb.KeyValue
	for i := range services {
		kvs = append(kvs, kv(msg.Path("a."+name(i), "skydns"), value(i, 1)))
	}
	etcd := newRevEtcd(kvs)
	w, ix := pagedWatcher(etcd, 16)
	if _, err := w.list(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range services {
		etcd.put(msg.Path("a."+name(i), "skydns"), value(i, 2))
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		readers.Go(func() {
			for q := r; ; q++ {
				select {
				case <-stop:
					return
				default:
				}
				i := q % services
				sx, err := ix.Records(name(i), false)
				want1, want2 := fmt.Sprintf("10.1.%d.%d", i>>8, i&255), fmt.Sprintf("10.2.%d.%d", i>>8, i&255)
				if err != nil || len(sx) != 1 || (sx[0].Host != want1 && sx[0].Host != want2) || sx[0].HostIP().String() != sx[0].Host {
					errs <- fmt.Errorf("%s during the relist: %v %v, want one of %s and %s", name(i), hosts(sx), err, want1, want2)
					return
				}
			}
		})
	}
	_, err := w.list(context.Background())
	close(stop)
	readers.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := range services {
		if got, want := answersFor(t, ix, name(i)), fmt.Sprintf("10.2.%d.%d", i>>8, i&255); !slices.Equal(got, []string{want}) {
			t.Fatalf("%s after the relist: %v, want %s", name(i), got, want)
		}
	}
}

// The malformed keys remembered across lists are those the last list
// read: one deleted while no watch ran, or seen only by a list attempt
// that was abandoned, is forgotten; one still there is neither logged nor
// counted again.
func TestRelistForgetsMalformedKeysGone(t *testing.T) {
	const stays, goes = "/skydns/test/bad-stays", "/skydns/test/bad-goes"
	cases := []struct {
		name    string
		between func(e *revEtcd)
		during  func(e *revEtcd) // Before the relist's first attempt's third page (it has read both bad keys), then compacted; nil: not restarted.
	}{
		{"deleted between lists", func(e *revEtcd) { e.del(goes) }, nil},
		{"deleted while an abandoned attempt listed", func(*revEtcd) {}, func(e *revEtcd) { e.del(goes) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			etcd := newRevEtcd([]*mvccpb.KeyValue{
				kv("/skydns/test/a", `{"host":"10.0.0.1"}`), kv(goes, `{`), kv(stays, `{`), kv("/skydns/test/z", `{"host":"10.0.0.2"}`),
			})
			w, _ := pagedWatcher(etcd, 1)
			if _, err := w.list(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.between(etcd)
			if tc.during != nil {
				third := etcd.pages + 2
				etcd.beforePage = func(page int) {
					if page == third {
						tc.during(etcd)
						etcd.compact()
					}
				}
			}
			if _, err := w.list(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, ok := w.malformed[goes]; ok || len(w.malformed) != 1 {
				t.Errorf("remembered %v, want only %s", slices.Sorted(maps.Keys(w.malformed)), stays)
			}
			if got := testutilCounter(w.metrics.malformed); got != 2 {
				t.Errorf("malformed values counted %v times, want 2 (each write once)", got)
			}
		})
	}
}
