package skydns

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/skydns/msg"
)

// revEtcd keeps every revision of its keys, so a list can read pages at
// an old revision while writes land between them, and a compaction can
// take that revision away. beforePage runs before each page is served.
type revEtcd struct {
	mu         sync.Mutex
	kvs        map[string]*mvccpb.KeyValue // With the revision each was written at.
	history    map[int64][]*mvccpb.KeyValue
	rev        int64
	compacted  int64
	firstPages int // Lists started.
	beforePage func(page int)
	pages      int
}

func newRevEtcd(kvs []*mvccpb.KeyValue) *revEtcd {
	e := &revEtcd{kvs: map[string]*mvccpb.KeyValue{}, history: map[int64][]*mvccpb.KeyValue{}}
	for _, kv := range kvs {
		e.kvs[string(kv.Key)] = &mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, ModRevision: 1}
	}
	e.commit()
	return e
}

// commit records the current keys as a new revision.
func (e *revEtcd) commit() {
	e.rev++
	var snap []*mvccpb.KeyValue
	for _, k := range slices.Sorted(maps.Keys(e.kvs)) {
		snap = append(snap, e.kvs[k])
	}
	e.history[e.rev] = snap
}

func (e *revEtcd) put(key, value string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kvs[key] = &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), ModRevision: e.rev + 1}
	e.commit()
}

func (e *revEtcd) del(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.kvs, key)
	e.commit()
}

func (e *revEtcd) compact() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.compacted = e.rev
}

func (e *revEtcd) Get(_ context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if e.beforePage != nil {
		e.beforePage(e.pages)
	}
	e.pages++
	e.mu.Lock()
	defer e.mu.Unlock()
	op := clientv3.OpGet(key, opts...)
	rev := op.Rev()
	if rev == 0 {
		rev = e.rev
		e.firstPages++
	}
	if rev < e.compacted {
		return nil, rpctypes.ErrCompacted
	}
	return page(e.history[rev], op, e.rev), nil
}

func (e *revEtcd) Watch(context.Context, string, ...clientv3.OpOption) clientv3.WatchChan {
	return make(chan clientv3.WatchResponse)
}

// snapshot is the keys at rev.
func (e *revEtcd) snapshot(rev int64) []*mvccpb.KeyValue {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.history[rev]
}

func pagedWatcher(etcd etcdReader, page int64) (*Watcher, *Index) {
	ix := NewIndex("skydns")
	w := NewWatcher(etcd, "skydns", ix, NewMetrics(prometheus.NewRegistry(), ix), slog.New(slog.DiscardHandler), time.Second)
	w.page = page
	return w, ix
}

// indexOf is the index a single Get of kvs builds.
func indexOf(t *testing.T, kvs []*mvccpb.KeyValue) *Index {
	t.Helper()
	w, ix := pagedWatcher(nil, 0)
	var records []msg.Service
	for _, kv := range kvs {
		if s, ok := w.parse(kv); ok {
			records = append(records, s)
		}
	}
	ix.Replace(records)
	return ix
}

// contents is every name of ix with its record's domain and value.
func contents(t *testing.T, ix *Index) map[string]string {
	t.Helper()
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := map[string]string{}
	for name, n := range ix.tree.byName {
		v := ""
		if n.value != nil {
			b, _ := msg.Marshal(n.value.service())
			v = n.value.Domain() + " " + string(b)
		}
		out[name] = v
	}
	return out
}

func sameIndex(t *testing.T, got, want *Index) {
	t.Helper()
	g, w := contents(t, got), contents(t, want)
	if got.Len() != want.Len() || !maps.Equal(g, w) {
		for name, v := range w {
			if g[name] != v {
				t.Errorf("%s: got %q, want %q", name, g[name], v)
			}
		}
		t.Fatalf("paged index: %d records, %d names; one Get: %d records, %d names", got.Len(), len(g), want.Len(), len(w))
	}
}

// A list in pages of 7 builds exactly the index one Get of the same
// revision does, though a key of a later page is deleted and re-added with
// another value, a key of a read page deleted and a new key added, all
// between its pages: those writes are past its revision.
func TestPagedListIsOneSnapshot(t *testing.T) {
	kvs := kube2skyKVs(20) // 130 keys: 19 pages.
	etcd := newRevEtcd(kvs)
	last, first := string(kvs[len(kvs)-1].Key), string(kvs[0].Key)
	etcd.beforePage = func(page int) {
		if page == 1 {
			etcd.del(last)
			etcd.put(last, `{"host":"10.9.9.9"}`)
			etcd.del(first)
			etcd.put("/skydns/local/cluster/svc/ns-0/new/x", `{"host":"10.9.9.8"}`)
		}
	}
	w, ix := pagedWatcher(etcd, 7)
	rev, err := w.list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if pages := (len(kvs) + 6) / 7; rev != 1 || etcd.pages != pages {
		t.Fatalf("listed at revision %d in %d pages, want 1 in %d", rev, etcd.pages, pages)
	}
	sameIndex(t, ix, indexOf(t, etcd.snapshot(1)))
	// And the index one Get of the whole layout builds is the same again.
	sameIndex(t, ix, indexOf(t, kvs))
}

// A compaction of the revision being listed makes the list start over at
// the newest revision, and that list is what the index holds.
func TestPagedListRestartsAfterCompaction(t *testing.T) {
	etcd := newRevEtcd(kube2skyKVs(20))
	etcd.beforePage = func(page int) {
		if page == 2 {
			etcd.put("/skydns/local/cluster/svc/ns-0/new/x", `{"host":"10.9.9.8"}`)
			etcd.compact()
		}
	}
	w, ix := pagedWatcher(etcd, 7)
	rev, err := w.list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if etcd.firstPages != 2 || rev != 2 {
		t.Fatalf("%d lists started, the last at revision %d; want 2, at revision 2", etcd.firstPages, rev)
	}
	sameIndex(t, ix, indexOf(t, etcd.snapshot(2)))
	if got := answersFor(t, ix, "new.ns-0.svc.cluster.local."); !slices.Equal(got, []string{"10.9.9.8"}) {
		t.Fatalf("the key written before the compaction: %v", got)
	}
}

// A list compacted at every start gives up after listRestarts attempts,
// with the compaction as its error, and leaves the loaded index alone.
func TestPagedListGivesUpOnEndlessCompaction(t *testing.T) {
	etcd := newRevEtcd(kube2skyKVs(20))
	etcd.beforePage = func(page int) {
		if page%2 == 1 {
			etcd.put(fmt.Sprintf("/skydns/local/cluster/svc/ns-0/new/x%d", page), `{"host":"10.9.9.8"}`)
			etcd.compact()
		}
	}
	w, ix := pagedWatcher(etcd, 7)
	if _, err := w.list(context.Background()); err == nil || etcd.firstPages != listRestarts || ix.Loaded() {
		t.Fatalf("err %v after %d lists, loaded %v; want the compaction after %d, nothing loaded", err, etcd.firstPages, ix.Loaded(), listRestarts)
	}
}

// A relist builds the index one Get of the new revision would, sharing
// the records whose keys were not written since the last list and parsing
// the rest again.
func TestRelistSharesUnchangedRecords(t *testing.T) {
	kvs := kube2skyKVs(20)
	etcd := newRevEtcd(kvs)
	w, ix := pagedWatcher(etcd, 7)
	if _, err := w.list(context.Background()); err != nil {
		t.Fatal(err)
	}
	unchanged, rewritten, deleted := string(kvs[3].Key), string(kvs[4].Key), string(kvs[5].Key)
	before := map[string]*record{}
	for _, key := range []string{unchanged, rewritten} {
		before[key] = valueAt(t, ix, key)
	}
	etcd.put(rewritten, `{"host":"10.9.9.9"}`)
	etcd.del(deleted)
	etcd.put("/skydns/local/cluster/svc/ns-0/new/x", `{"host":"10.9.9.8"}`)
	rev, err := w.list(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameIndex(t, ix, indexOf(t, etcd.snapshot(rev)))
	if valueAt(t, ix, unchanged) != before[unchanged] || valueAt(t, ix, rewritten) == before[rewritten] {
		t.Fatal("the relist did not share exactly the unchanged record")
	}
}

func valueAt(t *testing.T, ix *Index, key string) *record {
	t.Helper()
	segs, _ := msg.KeySegments(key, "skydns")
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n := ix.tree.root.find(segs)
	if n == nil || n.value == nil {
		t.Fatalf("no record at %s", key)
	}
	return n.value
}
