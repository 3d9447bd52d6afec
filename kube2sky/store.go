package kube2sky

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/etcdclient"
)

// Store is where records go: etcd in production, a map in unit tests.
// Revisions are etcd's: they order a list against the writes around it.
type Store interface {
	// List calls each with every key and value under the prefixes, all as
	// of one revision, and returns that revision. Each request it makes is
	// bounded on its own; after an error, what each was given is not the
	// whole list.
	List(ctx context.Context, each func(key, value string), prefixes ...string) (int64, error)
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
	kv    EtcdClient
	pages etcdclient.Pages
	fence *Fence // Nil without leader election: transactions are unconditional, as in 1.2.
}

var _ Store = etcdStore{}

// listPage is how many keys one request of a list reads: at 100,000
// services (290,000 keys, over 40 MiB of response) a list read whole held
// the response and every value at once; a thousand keys a request keep
// the round trips to a few hundred.
const listPage = 1000

// NewEtcdStore stores records in etcd through c; timeout bounds each
// request of a list.
func NewEtcdStore(c EtcdClient, timeout time.Duration) Store {
	return etcdStore{kv: c, pages: etcdclient.Pages{Size: listPage, Timeout: timeout}}
}

// AlarmList lists etcd's alarms.
func (s etcdStore) AlarmList(ctx context.Context) (*clientv3.AlarmResponse, error) {
	return s.kv.AlarmList(ctx)
}

// NewFencedEtcdStore is NewEtcdStore with every transaction guarded by
// fence: it commits only while fence's key still holds the term this
// kube2sky took when it became leader, and fails with ErrFenced otherwise.
func NewFencedEtcdStore(c EtcdClient, timeout time.Duration, fence *Fence) Store {
	s := NewEtcdStore(c, timeout).(etcdStore)
	s.fence = fence
	return s
}

// ErrFenced is a transaction refused because another kube2sky has taken
// the fence since this one did: this one is no longer the leader.
var ErrFenced = errors.New("refused by the fence: another kube2sky has become leader")

// Fence is the leader's term in etcd. A kube2sky that wins the Lease
// increments the term at Key with a compare-and-swap (Acquire) and then
// adds "Key holds my term, at the mod revision I last wrote it" to each
// of its transactions. A stale leader (one paused or partitioned past its
// lease while another took over) still holds the old term, so etcd
// refuses its writes atomically: the Lease alone cannot stop a write
// already on its way.
//
// The leader's own writes can be on their way too: a transaction whose
// outcome is unknown (a timeout, a connection closed under it) may still
// be applied later, however late: with several members, a request held
// by a member that stalled is proposed when it resumes, seconds after
// kube2sky has moved on. Applied after the owner's next commit, it would
// bring back what that commit deleted. So after an unknown outcome the
// fence is renewed before the next transaction: the leader puts its term
// again, which moves the key's mod revision, and the transaction that
// may still arrive compares the old one and is refused.
//
// Key lies outside skydns's /<prefix>/ so it never becomes a record.
type Fence struct {
	Key  string
	term atomic.Int64 // 0 until Acquire: a store with no term never writes.
	rev  atomic.Int64 // Key's mod revision, as this kube2sky last wrote or read it under its term.
	// unsure: a transaction's outcome is unknown; renew before the next.
	unsure atomic.Bool
	mu     sync.Mutex // One renewal at a time.
}

// FenceKey is the fence of the election of the Lease namespace/name.
func FenceKey(namespace, name string) string {
	return "/kube2sky-leader/" + namespace + "/" + name
}

// Term is the term Acquire took, 0 before.
func (f *Fence) Term() int64 { return f.term.Load() }

// Acquire increments the term in etcd, retrying while another writer
// races it, and keeps the new term as this kube2sky's.
func (f *Fence) Acquire(ctx context.Context, kv clientv3.KV) (int64, error) {
	for {
		resp, err := kv.Get(ctx, f.Key)
		if err != nil {
			return 0, fmt.Errorf("read fence %s: %w", f.Key, err)
		}
		var cur, modRev int64
		if len(resp.Kvs) == 1 {
			modRev = resp.Kvs[0].ModRevision
			if cur, err = strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); err != nil {
				return 0, fmt.Errorf("fence %s holds %q, not a term: %w", f.Key, resp.Kvs[0].Value, err)
			}
		}
		next := cur + 1
		txn, err := kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(f.Key), "=", modRev)). // 0: the key is absent.
			Then(clientv3.OpPut(f.Key, strconv.FormatInt(next, 10))).Commit()
		if err != nil {
			return 0, fmt.Errorf("take fence %s: %w", f.Key, err)
		}
		if txn.Succeeded {
			f.rev.Store(txn.Header.Revision)
			f.term.Store(next)
			return next, nil
		}
	}
}

// guard is the comparisons every transaction of the term carries, and the
// mod revision they name.
func (f *Fence) guard() ([]clientv3.Cmp, int64) {
	rev := f.rev.Load()
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(f.Key), "=", strconv.FormatInt(f.term.Load(), 10)),
		clientv3.Compare(clientv3.ModRevision(f.Key), "=", rev),
	}, rev
}

// settle renews the fence if a transaction's outcome is unknown, so that
// it can no longer be applied. Until a renewal succeeds, nothing is
// written: the error is the caller's to retry.
func (f *Fence) settle(ctx context.Context, kv clientv3.KV) error {
	if !f.unsure.Load() {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.unsure.Load() {
		return nil // Another worker renewed it meanwhile.
	}
	return f.renew(ctx, kv)
}

// renew puts the term again, compared with the mod revision this kube2sky
// knows, and keeps the new one. If the key has moved, either another
// kube2sky took a new term (ErrFenced) or a renewal of this one whose
// outcome was unknown has landed since: the key is ours, at a revision no
// transaction in flight names, and it is kept as it is. A renewal with an
// unknown outcome leaves the fence unsure, for the next to try again; if
// it lands later, it compares a revision that has moved, and is refused.
func (f *Fence) renew(ctx context.Context, kv clientv3.KV) error {
	if f.term.Load() == 0 {
		return fmt.Errorf("fence %s: no term taken: %w", f.Key, ErrFenced)
	}
	f.unsure.Store(true)
	term := strconv.FormatInt(f.term.Load(), 10)
	txn, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(f.Key), "=", f.rev.Load())).
		Then(clientv3.OpPut(f.Key, term)).Commit()
	if err != nil {
		return fmt.Errorf("renew fence %s: %w", f.Key, err)
	}
	if txn.Succeeded {
		f.rev.Store(txn.Header.Revision)
		f.unsure.Store(false)
		return nil
	}
	resp, err := kv.Get(ctx, f.Key)
	if err != nil {
		return fmt.Errorf("read fence %s: %w", f.Key, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != term {
		return fmt.Errorf("fence %s renewed under term %s: %w", f.Key, term, ErrFenced)
	}
	f.rev.Store(resp.Kvs[0].ModRevision)
	f.unsure.Store(false)
	return nil
}

// errSuperseded is a transaction refused because this kube2sky renewed its
// fence after building it: certainly not applied, and to be retried.
var errSuperseded = errors.New("refused by the fence, renewed since by this kube2sky: not applied")

// refused explains a transaction the fence refused, built when the key
// was at rev: superseded if this kube2sky has renewed since, or renews
// now to learn whether the key is still ours (a renewal with an unknown
// outcome that landed) or another kube2sky's (ErrFenced).
func (f *Fence) refused(ctx context.Context, kv clientv3.KV, rev int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rev.Load() == rev {
		if err := f.renew(ctx, kv); err != nil {
			return err
		}
	}
	return errSuperseded
}

// List reads the first prefix at the current revision and the others at
// that same revision, so the result is one consistent snapshot, a page at
// a time.
func (s etcdStore) List(ctx context.Context, each func(key, value string), prefixes ...string) (int64, error) {
	var rev int64
	for _, prefix := range prefixes {
		var err error
		rev, err = s.pages.Prefix(ctx, s.kv, prefix, rev, func(kv *mvccpb.KeyValue) { each(string(kv.Key), string(kv.Value)) })
		if err != nil {
			return 0, err
		}
	}
	return rev, nil
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
		txn, guardRev := s.kv.Txn(ctx), int64(0)
		if s.fence != nil {
			if err := s.fence.settle(ctx, s.kv); err != nil {
				return 0, err
			}
			var cmps []clientv3.Cmp
			cmps, guardRev = s.fence.guard()
			txn = txn.If(cmps...)
		}
		resp, err := txn.Then(ops[:n]...).Commit()
		if err != nil {
			if s.fence != nil && !etcdclient.IsNoSpace(err) { // A refusal for space is certain; the rest is not.
				s.fence.unsure.Store(true)
			}
			return 0, fmt.Errorf("etcd transaction of %d operations: %w", n, err)
		}
		if !resp.Succeeded {
			err := s.fence.refused(ctx, s.kv, guardRev)
			return 0, fmt.Errorf("etcd transaction of %d operations under term %d: %w", n, s.fence.Term(), err)
		}
		rev = resp.Header.Revision
		ops = ops[n:]
	}
	return rev, nil
}
