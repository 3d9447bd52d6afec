package kube2sky

import (
	"context"
	"fmt"
	"maps"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/etcdclient"
)

// Store is where records go: etcd in production, a map in unit tests.
// Revisions are etcd's: they order a list against the writes around it.
type Store interface {
	// List returns every key and value under the prefixes, all as of one
	// revision, and that revision.
	List(ctx context.Context, prefixes ...string) (Records, int64, error)
	// Apply writes puts and removes deletes. Puts land no later than
	// deletes, so a name never passes through NXDOMAIN on the way. It
	// returns the revision at which every write is visible.
	Apply(ctx context.Context, puts Records, deletes []string) (int64, error)
	// AlarmList is etcd's alarms: at NOSPACE reads work, and writes are
	// refused until space is freed and the alarm disarmed.
	etcdclient.AlarmLister
}

// maxTxnOps is etcd's default limit of operations in one transaction.
const maxTxnOps = 128

// EtcdClient is what the Store needs of the etcd client: keys, and the
// alarm list. *clientv3.Client has both.
type EtcdClient interface {
	clientv3.KV
	etcdclient.AlarmLister
}

// etcdStore is the Store over etcd v3.
type etcdStore struct {
	kv EtcdClient
}

var _ Store = etcdStore{}

// NewEtcdStore stores records in etcd through c.
func NewEtcdStore(c EtcdClient) Store { return etcdStore{kv: c} }

// AlarmList lists etcd's alarms.
func (s etcdStore) AlarmList(ctx context.Context) (*clientv3.AlarmResponse, error) {
	return s.kv.AlarmList(ctx)
}

// List reads the first prefix at the current revision and the others at
// that same revision, so the result is one consistent snapshot.
func (s etcdStore) List(ctx context.Context, prefixes ...string) (Records, int64, error) {
	out := Records{}
	var rev int64
	for _, prefix := range prefixes {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.kv.Get(ctx, prefix, opts...)
		if err != nil {
			return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision // A read at WithRev reports the current revision instead.
		}
		for _, kv := range resp.Kvs {
			out[string(kv.Key)] = string(kv.Value)
		}
	}
	return out, rev, nil
}

// Apply commits one transaction when the change fits in one (every object
// but the largest headless services); otherwise puts go first, in chunks,
// then deletes.
func (s etcdStore) Apply(ctx context.Context, puts Records, deletes []string) (int64, error) {
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes))
	for _, k := range slices.Sorted(maps.Keys(puts)) {
		ops = append(ops, clientv3.OpPut(k, puts[k]))
	}
	for _, k := range deletes {
		ops = append(ops, clientv3.OpDelete(k))
	}
	var rev int64
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		resp, err := s.kv.Txn(ctx).Then(ops[:n]...).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcd transaction of %d operations: %w", n, err)
		}
		rev = resp.Header.Revision
		ops = ops[n:]
	}
	return rev, nil
}
