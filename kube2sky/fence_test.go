package kube2sky

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/etcdclient/etcdfake"
)

// fakeKV is the part of etcd the fence and the store use: Get of one key
// and transactions whose comparisons are equalities of a value or a mod
// revision, evaluated as etcd does, atomically with their operations.
type fakeKV struct {
	clientv3.KV // Nil: any other call panics.
	data        map[string]*mvccpb.KeyValue
	rev         int64
	txns        [][]clientv3.Cmp // The comparisons of each committed transaction.
	// hold is how many of the next transactions are held rather than
	// committed: each returns errHeld, and land applies it later, as etcd
	// does a request a stalled member held until it resumed.
	hold int
	held []*fakeTxn
}

var errHeld = errors.New("rpc error: code = Unavailable desc = error reading from server: use of closed network connection")

// land commits the i-th held transaction now, comparisons and all, and
// says whether they held.
func (f *fakeKV) land(i int) bool {
	resp, err := f.held[i].commit()
	return err == nil && resp.Succeeded
}

// AlarmList: no alarm is raised.
func (f *fakeKV) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	return etcdfake.Alarms(false), nil
}

func newFakeKV() *fakeKV { return &fakeKV{data: map[string]*mvccpb.KeyValue{}, rev: 1} }

func (f *fakeKV) Get(_ context.Context, key string, _ ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp := &clientv3.GetResponse{Header: &pb.ResponseHeader{Revision: f.rev}}
	if kv, ok := f.data[key]; ok {
		resp.Kvs = []*mvccpb.KeyValue{kv}
	}
	return resp, nil
}

func (f *fakeKV) Txn(context.Context) clientv3.Txn { return &fakeTxn{kv: f} }

type fakeTxn struct {
	kv   *fakeKV
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

func (t *fakeTxn) If(cs ...clientv3.Cmp) clientv3.Txn { t.cmps = append(t.cmps, cs...); return t }
func (t *fakeTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	return t
}
func (t *fakeTxn) Else(...clientv3.Op) clientv3.Txn { panic("Else is not used") }

func (t *fakeTxn) Commit() (*clientv3.TxnResponse, error) {
	if t.kv.hold > 0 {
		t.kv.hold--
		t.kv.held = append(t.kv.held, t)
		return nil, errHeld
	}
	return t.commit()
}

func (t *fakeTxn) commit() (*clientv3.TxnResponse, error) {
	f := t.kv
	f.txns = append(f.txns, t.cmps)
	for _, c := range t.cmps {
		if ok, err := f.holds(c); err != nil || !ok {
			return &clientv3.TxnResponse{Header: &pb.ResponseHeader{Revision: f.rev}}, err
		}
	}
	f.rev++
	for _, op := range t.ops {
		switch {
		case op.IsPut():
			f.data[string(op.KeyBytes())] = &mvccpb.KeyValue{Key: op.KeyBytes(), Value: op.ValueBytes(), ModRevision: f.rev}
		case op.IsDelete():
			delete(f.data, string(op.KeyBytes()))
		}
	}
	return &clientv3.TxnResponse{Header: &pb.ResponseHeader{Revision: f.rev}, Succeeded: true}, nil
}

func (f *fakeKV) holds(c clientv3.Cmp) (bool, error) {
	if c.Result != pb.Compare_EQUAL {
		return false, fmt.Errorf("comparison %v not supported", c.Result)
	}
	kv := f.data[string(c.KeyBytes())]
	switch u := c.TargetUnion.(type) {
	case *pb.Compare_Value:
		return kv != nil && string(kv.Value) == string(u.Value), nil
	case *pb.Compare_ModRevision:
		if kv == nil {
			return u.ModRevision == 0, nil
		}
		return kv.ModRevision == u.ModRevision, nil
	}
	return false, fmt.Errorf("comparison target %v not supported", c.Target)
}

// TestFenceRefusesAStaleLeader: the leader before the last Acquire has its
// transactions refused, and etcd keeps the new leader's records.
func TestFenceRefusesAStaleLeader(t *testing.T) {
	ctx := context.Background()
	kv := newFakeKV()
	key := FenceKey("kube-system", "kube2sky")
	oldFence, newFence := &Fence{Key: key}, &Fence{Key: key}
	old, cur := NewFencedEtcdStore(kv, time.Second, oldFence), NewFencedEtcdStore(kv, time.Second, newFence)

	if _, err := old.Apply(ctx, Records{"/skydns/a": "1"}, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("before any term: %v, want ErrFenced", err)
	}
	if term, err := oldFence.Acquire(ctx, kv); err != nil || term != 1 {
		t.Fatalf("first Acquire: %d, %v; want term 1", term, err)
	}
	if _, err := old.Apply(ctx, Records{"/skydns/a": "old"}, nil); err != nil {
		t.Fatalf("leader's write: %v", err)
	}
	if term, err := newFence.Acquire(ctx, kv); err != nil || term != 2 {
		t.Fatalf("takeover: %d, %v; want term 2", term, err)
	}
	if _, err := old.Apply(ctx, Records{"/skydns/a": "stale"}, []string{"/skydns/b"}); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale leader's write: %v, want ErrFenced", err)
	}
	if got := string(kv.data["/skydns/a"].Value); got != "old" {
		t.Fatalf("/skydns/a = %q after a refused write, want %q", got, "old")
	}
	if _, err := cur.Apply(ctx, Records{"/skydns/a": "new"}, nil); err != nil {
		t.Fatalf("new leader's write: %v", err)
	}
	if got := string(kv.data[key].Value); got != "2" {
		t.Fatalf("fence holds %q, want 2", got)
	}
}

// TestFenceGuardsEveryChunk: a change too big for one transaction is
// guarded chunk by chunk, with the one comparison each.
func TestFenceGuardsEveryChunk(t *testing.T) {
	ctx := context.Background()
	kv := newFakeKV()
	fence := &Fence{Key: FenceKey("ns", "name")}
	if _, err := fence.Acquire(ctx, kv); err != nil {
		t.Fatal(err)
	}
	kv.txns = nil
	puts := Records{}
	for i := range 2*maxTxnOps + 1 {
		puts[fmt.Sprintf("/skydns/k%03d", i)] = "v"
	}
	if _, err := NewFencedEtcdStore(kv, time.Second, fence).Apply(ctx, puts, nil); err != nil {
		t.Fatal(err)
	}
	if len(kv.txns) != 3 {
		t.Fatalf("%d transactions, want 3", len(kv.txns))
	}
	rev := kv.data[fence.Key].ModRevision
	for i, cmps := range kv.txns {
		if len(cmps) != 2 || string(cmps[0].KeyBytes()) != fence.Key || string(cmps[0].ValueBytes()) != "1" ||
			string(cmps[1].KeyBytes()) != fence.Key || cmps[1].TargetUnion.(*pb.Compare_ModRevision).ModRevision != rev {
			t.Fatalf("transaction %d compares %v, want the fence at term 1 and mod revision %d", i, cmps, rev)
		}
	}
}

// leading is a leader's fence at term 1 in kv, and its store.
func leading(t *testing.T, kv *fakeKV) (*Fence, Store) {
	t.Helper()
	fence := &Fence{Key: FenceKey("kube-system", "kube2sky")}
	if _, err := fence.Acquire(context.Background(), kv); err != nil {
		t.Fatal(err)
	}
	return fence, NewFencedEtcdStore(kv, time.Second, fence)
}

// TestLateTransactionIsRefusedAfterARenewal is TestHAFailover's
// etcd-leader-sigstop as it failed before the renewal: a transaction
// putting a service's records has an unknown outcome (the member it went
// to stalled); the retry commits them; the service is deleted, and its
// records with it; then the member resumes and the first attempt is
// applied, bringing the records back for good. Now the fence is renewed
// before the retry, and the first attempt, landing late, is refused.
func TestLateTransactionIsRefusedAfterARenewal(t *testing.T) {
	ctx, kv := context.Background(), newFakeKV()
	fence, store := leading(t, kv)
	puts := Records{"/skydns/local/cluster/svc/ns/churn-5/hchurn-5": `{"host":"10.250.0.9"}`}
	kv.hold = 1
	if _, err := store.Apply(ctx, puts, nil); !errors.Is(err, errHeld) {
		t.Fatalf("the held transaction: %v, want its error", err)
	}
	if _, err := store.Apply(ctx, puts, nil); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if _, err := store.Apply(ctx, nil, slices.Collect(maps.Keys(puts))); err != nil {
		t.Fatalf("the delete: %v", err)
	}
	if kv.land(0) {
		t.Fatal("the first attempt, landing after the delete, was applied")
	}
	if len(kv.data) != 1 {
		t.Fatalf("etcd holds %v, want the fence alone", slices.Collect(maps.Keys(kv.data)))
	}
	if got := string(kv.data[fence.Key].Value); got != "1" {
		t.Fatalf("fence holds %q after its renewal, want the term, 1", got)
	}
}

// TestRenewalWithAnUnknownOutcome: a renewal can be held too. Landing
// before the next renewal, it is recognised as this kube2sky's (the key
// holds its term) and kept; landing after it, it is refused; either way
// the first transaction stays refused and the leader writes on.
func TestRenewalWithAnUnknownOutcome(t *testing.T) {
	for _, early := range []bool{true, false} {
		t.Run(fmt.Sprintf("lands-before-the-next=%v", early), func(t *testing.T) {
			ctx, kv := context.Background(), newFakeKV()
			_, store := leading(t, kv)
			kv.hold = 2 // The transaction, then the renewal before its retry.
			for range 2 {
				if _, err := store.Apply(ctx, Records{"/skydns/a": "1"}, nil); !errors.Is(err, errHeld) {
					t.Fatalf("held: %v, want its error", err)
				}
			}
			if early && !kv.land(1) {
				t.Fatal("the held renewal, landing first, was refused")
			}
			if _, err := store.Apply(ctx, Records{"/skydns/b": "2"}, nil); err != nil {
				t.Fatalf("after the held renewal: %v", err)
			}
			if kv.land(0) {
				t.Fatal("the first transaction was applied after a renewal")
			}
			if !early && kv.land(1) {
				t.Fatal("the held renewal, landing last, was applied")
			}
			if _, err := store.Apply(ctx, Records{"/skydns/c": "3"}, nil); err != nil {
				t.Fatalf("at the end: %v", err)
			}
			if _, ok := kv.data["/skydns/a"]; ok {
				t.Fatal("/skydns/a was written")
			}
		})
	}
}

// TestRefusalsAfterARenewal: a transaction built before this kube2sky
// renewed its fence is superseded, to be retried, not fenced; one from a
// leader whose term another took is fenced, renewal or not.
func TestRefusalsAfterARenewal(t *testing.T) {
	ctx := context.Background()
	kv := newFakeKV()
	key := FenceKey("kube-system", "kube2sky")
	old, cur := &Fence{Key: key}, &Fence{Key: key}
	if _, err := old.Acquire(ctx, kv); err != nil {
		t.Fatal(err)
	}
	_, before := old.guard()
	if err := old.renew(ctx, kv); err != nil {
		t.Fatal(err)
	}
	if err := old.refused(ctx, kv, before); !errors.Is(err, errSuperseded) || errors.Is(err, ErrFenced) {
		t.Fatalf("a transaction from before the renewal: %v, want superseded", err)
	}
	if _, err := cur.Acquire(ctx, kv); err != nil {
		t.Fatal(err)
	}
	old.unsure.Store(true)
	if _, err := NewFencedEtcdStore(kv, time.Second, old).Apply(ctx, Records{"/skydns/a": "stale"}, nil); !errors.Is(err, ErrFenced) {
		t.Fatalf("a stale leader renewing: %v, want ErrFenced", err)
	}
	_, now := old.guard()
	if err := old.refused(ctx, kv, now); !errors.Is(err, ErrFenced) {
		t.Fatalf("a stale leader's refused transaction: %v, want ErrFenced", err)
	}
	if got := string(kv.data[key].Value); got != "2" {
		t.Fatalf("fence holds %q, want the new leader's term, 2", got)
	}
}

// TestUnfencedStoreHasNoComparison: without --leader-elect transactions
// stay unconditional, as in 1.2.
func TestUnfencedStoreHasNoComparison(t *testing.T) {
	kv := newFakeKV()
	if _, err := NewEtcdStore(kv, time.Second).Apply(context.Background(), Records{"/skydns/a": "1"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(kv.txns) != 1 || len(kv.txns[0]) != 0 {
		t.Fatalf("comparisons %v, want none", kv.txns)
	}
}

// TestFenceKeyIsNotServed: skydns reads /<prefix>/ only, and kube2sky's
// lists cover its own subtrees under it.
func TestFenceKeyIsNotServed(t *testing.T) {
	if key := FenceKey("kube-system", "kube2sky"); strings.HasPrefix(key, "/skydns/") {
		t.Fatalf("fence %s lies under skydns's prefix", key)
	}
}
