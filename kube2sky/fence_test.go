package kube2sky

import (
	"context"
	"errors"
	"fmt"
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
	for i, cmps := range kv.txns {
		if len(cmps) != 1 || string(cmps[0].KeyBytes()) != fence.Key || string(cmps[0].ValueBytes()) != "1" {
			t.Fatalf("transaction %d compares %v, want the fence at term 1", i, cmps)
		}
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
