package kube2sky

import (
	"context"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store is where records go: etcd in production, a map in unit tests.
type Store interface {
	// List returns every key and value under prefix.
	List(ctx context.Context, prefix string) (Records, error)
	// Apply writes puts and removes deletes. Puts land no later than
	// deletes, so a name never passes through NXDOMAIN on the way.
	Apply(ctx context.Context, puts Records, deletes []string) error
}

// maxTxnOps is etcd's default limit of operations in one transaction.
const maxTxnOps = 128

// etcdStore is the Store over etcd v3.
type etcdStore struct {
	kv clientv3.KV
}

var _ Store = etcdStore{}

// NewEtcdStore stores records in etcd through kv.
func NewEtcdStore(kv clientv3.KV) Store { return etcdStore{kv: kv} }

func (s etcdStore) List(ctx context.Context, prefix string) (Records, error) {
	resp, err := s.kv.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make(Records, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out, nil
}

// Apply commits one transaction when the change fits in one (every object
// but the largest headless services); otherwise puts go first, in chunks,
// then deletes.
func (s etcdStore) Apply(ctx context.Context, puts Records, deletes []string) error {
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes))
	for _, k := range slices.Sorted(maps.Keys(puts)) {
		ops = append(ops, clientv3.OpPut(k, puts[k]))
	}
	for _, k := range deletes {
		ops = append(ops, clientv3.OpDelete(k))
	}
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		if _, err := s.kv.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return fmt.Errorf("etcd transaction of %d operations: %w", n, err)
		}
		ops = ops[n:]
	}
	return nil
}
