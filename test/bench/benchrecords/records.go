// Package benchrecords writes the benchmarks' records into etcd: N
// services in kube2sky's layout (loadrecords, bench-attack), or any set of
// keys, in transactions small enough for etcd.
package benchrecords

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/skydns/msg"
)

// batch is how many keys one transaction writes.
const batch = 100

// Services are n services in kube2sky's layout under prefix: a ClusterIP A
// leaf and a named-port SRV leaf each, labelled with the record hash,
// perNamespace to a namespace ns-<i>. It returns the keys and values, and
// the services' names.
func Services(n, perNamespace int, domain, prefix string) (records map[string]string, names []string) {
	records = make(map[string]string, 2*n)
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("ns-%d", i/perNamespace)
		name := fmt.Sprintf("svc-%d.%s.svc.%s", i, ns, domain)
		ip := fmt.Sprintf("10.%d.%d.%d", 100+i>>16, (i>>8)&255, i&255)
		a, _ := msg.Marshal(msg.Service{Host: ip, Priority: 10, Weight: 10, TTL: 30})
		srv, _ := msg.Marshal(msg.Service{Host: name, Port: 80, Priority: 10, Weight: 10, TTL: 30})
		label := msg.HashLabel(a)
		records[msg.Path(label+"."+name, prefix)] = string(a)
		records[msg.Path(label+"._http._tcp."+name, prefix)] = string(srv)
		names = append(names, name)
	}
	return records, names
}

// Write puts records into etcd, a transaction per hundred keys, each
// within timeout.
func Write(ctx context.Context, c *clientv3.Client, records map[string]string, timeout time.Duration) error {
	keys := slices.Sorted(maps.Keys(records))
	for len(keys) > 0 {
		n := min(batch, len(keys))
		ops := make([]clientv3.Op, 0, n)
		for _, k := range keys[:n] {
			ops = append(ops, clientv3.OpPut(k, records[k]))
		}
		if err := commit(ctx, c, ops, timeout); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func commit(ctx context.Context, c *clientv3.Client, ops []clientv3.Op, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.Txn(ctx).Then(ops...).Commit()
	return err
}
