package skydns

import (
	"fmt"
	"runtime"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/skypod/skypod/skydns/msg"
)

// kube2skyKVs are the etcd keys and values kube2sky writes for n services
// (test/bench/loadrecords -headless-percent=10 -endpoints=5
// -named-port-percent=10 -reverse): 10% headless with five endpoints,
// 10% with a named port, the rest a ClusterIP alone; PTR records for
// every address. 2.9 keys per service.
func kube2skyKVs(n int) []*mvccpb.KeyValue {
	var out []*mvccpb.KeyValue
	add := func(name string, s msg.Service) string {
		v, _ := msg.Marshal(s)
		label := msg.HashLabel(v)
		out = append(out, &mvccpb.KeyValue{Key: []byte(msg.Path(label+"."+name, "skydns")), Value: v, ModRevision: 1})
		return label
	}
	ptr := func(ip [4]int, target string) {
		v, _ := msg.Marshal(msg.Service{Host: target, Priority: 10, Weight: 10, TTL: 30})
		name := fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", ip[3], ip[2], ip[1], ip[0])
		out = append(out, &mvccpb.KeyValue{Key: []byte(msg.Path(name, "skydns")), Value: v, ModRevision: 1})
	}
	for i := range n {
		name := fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local.", i, i/5000)
		record := func(ip [4]int) string {
			return add(name, msg.Service{Host: fmt.Sprintf("%d.%d.%d.%d", ip[0], ip[1], ip[2], ip[3]), Priority: 10, Weight: 10, TTL: 30})
		}
		switch bucket := i % 100; {
		case bucket < 10:
			for e := range 5 {
				j := i*5 + e
				ip := [4]int{172, 16 + j>>16, j >> 8 & 255, j & 255}
				ptr(ip, record(ip)+"."+name)
			}
		default:
			ip := [4]int{10, 100 + i>>16, i >> 8 & 255, i & 255}
			label := record(ip)
			ptr(ip, name)
			if bucket < 20 { // The SRV record is labelled with the address record's hash.
				v, _ := msg.Marshal(msg.Service{Host: name, Port: 80, Priority: 10, Weight: 10, TTL: 30})
				out = append(out, &mvccpb.KeyValue{Key: []byte(msg.Path(label+"._http._tcp."+name, "skydns")), Value: v, ModRevision: 1})
			}
		}
	}
	return out
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// load reads kvs into ix as a list does: unchanged records kept, the rest
// parsed. It returns the load uncommitted.
func load(w *Watcher, ix *Index, kvs []*mvccpb.KeyValue) *Load {
	l := ix.NewLoad()
	for _, kv := range kvs {
		if !l.Keep(kv.Key, kv.ModRevision) {
			if s, ok := w.parse(kv); ok {
				l.Add(s, kv.ModRevision)
			}
		}
	}
	return l
}

// BenchmarkIndexMemory reports the heap an index of 100,000 services in
// kube2sky's layout holds (go test -run '^$' -bench IndexMemory ./skydns/),
// and the heap at the end of two relists, just before each commits: one
// of the same keys (relist-heap-MiB: every record kept, nothing parsed),
// and one in which every key was written again (rewrite-heap-MiB: the
// worst case, every record parsed and put anew while the index answers).
func BenchmarkIndexMemory(b *testing.B) {
	const services = 100000
	kvs := kube2skyKVs(services)
	rewritten := make([]*mvccpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		rewritten[i] = &mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, ModRevision: kv.ModRevision + 1}
	}
	w := &Watcher{prefix: "/skydns/", malformed: map[string]malformedWrite{}}
	for b.Loop() {
		before := heapInUse()
		ix := NewIndex("skydns")
		load(w, ix, kvs).Commit()
		after := heapInUse()
		relists := map[string][]*mvccpb.KeyValue{"relist-heap-MiB": kvs, "rewrite-heap-MiB": rewritten}
		for _, metric := range []string{"relist-heap-MiB", "rewrite-heap-MiB"} {
			l := load(w, ix, relists[metric])
			b.ReportMetric(float64(heapInUse()-before)/(1<<20), metric)
			l.Commit()
		}
		b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(after-before)/float64(ix.Len()), "B/record")
		runtime.KeepAlive(ix)
	}
}
