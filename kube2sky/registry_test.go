package kube2sky

import (
	"context"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestRegistry(store Store) *Registry {
	return NewRegistry(store, namer, time.Second, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
}

// A sync that commits while a resync's list is in flight is newer than the
// list: the reset that follows must keep it, or the next plan would undo it
// (put back what it deleted, forget what it put).
func TestResyncKeepsWritesNewerThanItsList(t *testing.T) {
	const (
		oldKey = "/skydns/local/cluster/svc/default/web/f488b1a2"
		newKey = "/skydns/local/cluster/svc/default/web/d8321f45"
		oldVal = `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30}`
		newVal = `{"host":"10.0.0.2","priority":10,"weight":10,"ttl":30}`
	)
	web := serviceOwner("default", "web")
	store := &memStore{data: Records{oldKey: oldVal}}
	r := newTestRegistry(store)
	ctx := context.Background()
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	desired := Records{newKey: newVal}
	store.afterList = func() {
		store.afterList = nil
		if _, err := r.Apply(ctx, web, r.Plan(web, desired)); err != nil {
			t.Error(err)
		}
	}
	owners, _, err := r.Refresh(ctx) // Lists {oldKey}; the sync then moves web to newKey.
	if err != nil {
		t.Fatal(err)
	}
	if data, _, _ := store.snapshot(); data[newKey] != newVal || data[oldKey] != "" {
		t.Fatalf("the racing sync did not commit: %v", data)
	}
	if p := r.Plan(web, desired); !p.Empty() {
		t.Errorf("after the reset the registry lost the newer write: plan %+v", p)
	}
	if len(owners) != 1 || owners[0] != web {
		t.Errorf("owners after reset: %v", owners)
	}

	// A list taken after the write shows it; the revision it was written
	// at is no longer needed.
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if p := r.Plan(web, desired); !p.Empty() || len(r.state.written) != 0 {
		t.Errorf("plan %+v, revisions kept %v", p, r.state.written)
	}
	if p := r.Plan(web, Records{}); len(p.Deletes) != 1 || p.Deletes[0] != newKey {
		t.Errorf("deleting the service: %+v", p)
	}
}

// etcd restored from an older snapshot (or wiped) has gone back in time:
// its list's revision is below kube2sky's own writes, which revisions no
// longer order against it. The list is the truth: a record the restore lost
// is put again, one it brought back is deleted, and a probe asks for the
// resync at once.
func TestResyncAfterEtcdWentBackTrustsTheList(t *testing.T) {
	const (
		keptKey = "/skydns/local/cluster/svc/default/web/f488b1a2"
		lostKey = "/skydns/local/cluster/svc/default/web/d8321f45"
		backKey = "/skydns/local/cluster/svc/default/web/5f106532"
		keptVal = `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30}`
		lostVal = `{"host":"10.0.0.2","priority":10,"weight":10,"ttl":30}`
		backVal = `{"host":"10.0.0.10","priority":10,"weight":10,"ttl":30}`
	)
	web := serviceOwner("default", "web")
	store := &memStore{data: Records{keptKey: keptVal, backKey: backVal}, revision: 5}
	snapshot := maps.Clone(store.data)
	r := newTestRegistry(store)
	ctx := context.Background()
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	desired := Records{keptKey: keptVal, lostKey: lostVal}
	if _, err := r.Apply(ctx, web, r.Plan(web, desired)); err != nil { // Puts lostKey, deletes backKey, at 6.
		t.Fatal(err)
	}

	store.mu.Lock()
	store.data, store.revision = maps.Clone(snapshot), 3 // Restored from a snapshot taken at 3.
	store.mu.Unlock()
	r.Probe(ctx, time.Second)
	if !r.TakeRecovered() {
		t.Error("a probe that saw the revision go back did not ask for a resync")
	}
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	p := r.Plan(web, desired)
	if p.Puts[lostKey] != lostVal || len(p.Puts) != 1 || !slices.Equal(p.Deletes, []string{backKey}) {
		t.Fatalf("after the restore the plan does not repair etcd: %+v", p)
	}
	if _, err := r.Apply(ctx, web, p); err != nil {
		t.Fatal(err)
	}
	if data, _, _ := store.snapshot(); !maps.Equal(data, desired) {
		t.Errorf("etcd after the repair: %v", data)
	}

	// Revisions order writes again after the restore: a list taken at the
	// new timeline's revisions is an ordinary one.
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r.Probe(ctx, time.Second)
	if p := r.Plan(web, desired); !p.Empty() || r.TakeRecovered() {
		t.Errorf("after the repair: plan %+v, or a resync asked for again", p)
	}
}

// A reverse record two services call for (an IP both select, or a
// ClusterIP that moved) is held by one at a time: the other is refused it,
// without writing, until the holder gives it up; then Apply names the
// waiting owner, which claims it, and the old owner no longer deletes it.
func TestReverseRecordChangesHands(t *testing.T) {
	const ptr = "/skydns/arpa/in-addr/10/0/0/1"
	a, b := serviceOwner("default", "a"), serviceOwner("default", "b")
	_, toA := value("a.default.svc.cluster.local.", 0)
	_, toB := value("b.default.svc.cluster.local.", 0)
	store := &memStore{data: Records{ptr: toA}}
	r := newTestRegistry(store)
	ctx := context.Background()
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if p := r.Plan(b, Records{ptr: toB}); !p.Empty() {
		t.Fatalf("b overwrites a PTR a still holds: %+v", p)
	}
	if p := r.Plan(a, Records{ptr: toA}); !p.Empty() {
		t.Fatalf("a rewrites the PTR it holds: %+v", p)
	}
	released, err := r.Apply(ctx, a, r.Plan(a, Records{})) // a no longer calls for it.
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(released, []Owner{b}) {
		t.Fatalf("a gave the PTR up; owners released: %v, want b", released)
	}
	if _, err := r.Apply(ctx, b, r.Plan(b, Records{ptr: toB})); err != nil {
		t.Fatal(err)
	}
	if p := r.Plan(a, Records{}); !p.Empty() {
		t.Errorf("the old owner would delete the moved PTR: %+v", p)
	}
	if data, _, _ := store.snapshot(); data[ptr] != toB {
		t.Errorf("PTR: %s", data[ptr])
	}
}

// Two owners that both planned a PTR nobody held commit in some order; the
// registry follows etcd (the later revision holds it) whatever order their
// commits are recorded in, and the other waits for it.
func TestRacingClaimsFollowTheLaterCommit(t *testing.T) {
	const ptr = "/skydns/arpa/in-addr/10/0/0/1"
	a, b := serviceOwner("default", "a"), serviceOwner("default", "b")
	_, toA := value("a.default.svc.cluster.local.", 0)
	_, toB := value("b.default.svc.cluster.local.", 0)
	for _, recordedFirst := range []Owner{a, b} {
		t.Run("recorded first "+recordedFirst.String(), func(t *testing.T) {
			o := newOwned(namer, maphash.MakeSeed())
			pa := Plan{Puts: Records{ptr: toA}}
			pb := Plan{Puts: Records{ptr: toB}}
			if recordedFirst == a {
				o.applied(a, pa, 7)
				o.applied(b, pb, 8)
			} else {
				o.applied(b, pb, 8)
				o.applied(a, pa, 7)
			}
			if d, ok := o.holds(b, ptr); !ok || d != o.digestOf(toB) {
				t.Errorf("registry: %s held by a %v, b %v; want b's value (committed last)", ptr, o.ownerKeys(a), o.ownerKeys(b))
			}
			if released := o.applied(b, Plan{Deletes: []string{ptr}}, 9); !slices.Equal(released, []Owner{a}) {
				t.Errorf("b gave the PTR up; released %v, want a", released)
			}
		})
	}
}

// lateStore is a memStore whose commits, while stalled, fail as a timeout
// does and are applied later, on release: as etcd applies a transaction
// it had taken before it froze, after kube2sky gave up on it.
type lateStore struct {
	*memStore
	stalled bool
	late    []func()
}

func (l *lateStore) Apply(ctx context.Context, puts Records, deletes []string) (int64, error) {
	if !l.stalled {
		return l.memStore.Apply(ctx, puts, deletes)
	}
	l.late = append(l.late, func() { _, _ = l.memStore.Apply(ctx, puts, deletes) })
	return 0, context.DeadlineExceeded
}

// A commit that timed out may still be applied, even after the list of the
// resync that follows the outage: its keys stay its owner's, with an
// unknown value, until a later commit settles them, so a service created
// and deleted during the outage leaves nothing behind (the fault suite's
// etcd-down-30s found the records of such services stale).
func TestTimedOutCommitIsSettledByTheOwnersNextPlan(t *testing.T) {
	const key = "/skydns/local/cluster/svc/default/web/f488b1a2"
	web := serviceOwner("default", "web")
	store := &lateStore{memStore: &memStore{data: Records{}}}
	r := newTestRegistry(store)
	ctx := context.Background()
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	store.stalled = true
	if _, err := r.Apply(ctx, web, r.Plan(web, Records{key: `{"host":"10.0.0.1"}`})); err == nil {
		t.Fatal("a stalled commit succeeded")
	}
	store.stalled = false
	owners, _, err := r.Refresh(ctx) // etcd answers again: the resync's list, without the late commit.
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(owners, web) {
		t.Fatalf("the owner of an uncertain commit is not planned by the resync: %v", owners)
	}
	for _, apply := range store.late {
		apply() // etcd applies the commit kube2sky gave up on.
	}
	if _, err := r.Apply(ctx, web, r.Plan(web, Records{})); err != nil { // The service is gone.
		t.Fatal(err)
	}
	if data, _, _ := store.snapshot(); len(data) != 0 {
		t.Fatalf("stale records after the owner's plan: %v", data)
	}
}
