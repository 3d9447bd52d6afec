package etcdclient

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Getter is the read of the etcd client a paged list needs.
type Getter interface {
	Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error)
}

// Pages lists etcd a page at a time: each request reads at most Size keys,
// within Timeout, so a list of hundreds of thousands of keys holds one
// page's response at a time, never the whole range's, and a slow etcd
// fails one request rather than a list sized for the largest range.
type Pages struct {
	Size    int64
	Timeout time.Duration
}

// Prefix calls each for every key under prefix, in key order, as of
// revision rev (0: the current one, which the first page fixes), and
// returns that revision. Each page is dropped before the next is read.
func (p Pages) Prefix(ctx context.Context, kv Getter, prefix string, rev int64, each func(*mvccpb.KeyValue)) (int64, error) {
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(p.Size)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := p.get(ctx, kv, from, opts...)
		if err != nil {
			return 0, fmt.Errorf("list %s from %q: %w", prefix, from, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision // A read at WithRev reports the current revision instead.
		}
		for _, kv := range resp.Kvs {
			each(kv)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00" // The next key after the last one read.
	}
}

func (p Pages) get(ctx context.Context, kv Getter, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	return GetWithin(ctx, kv, p.Timeout, key, opts...)
}

// GetWithin is one read bounded by timeout as well as by ctx: the client
// retries a read on another member until its context ends, so a caller
// that must hear back (a probe, a page of a list) gives each read its own.
func GetWithin(ctx context.Context, kv Getter, timeout time.Duration, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	gctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return kv.Get(gctx, key, opts...)
}
