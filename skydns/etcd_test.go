package skydns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
)

// scriptedEtcd serves lists from a sequence of snapshots and hands each
// watch a channel the test feeds.
type scriptedEtcd struct {
	mu        sync.Mutex
	snapshots [][]*mvccpb.KeyValue
	lists     int
	watches   chan chan clientv3.WatchResponse
	fail      bool
}

func (e *scriptedEtcd) Get(_ context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail {
		return nil, errors.New("connection refused")
	}
	op := clientv3.OpGet(key, opts...)
	if op.IsCountOnly() {
		return &clientv3.GetResponse{Header: &etcdserverpb.ResponseHeader{}}, nil // The health probe.
	}
	if op.Rev() == 0 {
		e.lists++ // The first page of a list.
	}
	return page(e.snapshots[min(e.lists-1, len(e.snapshots)-1)], op, int64(10*e.lists)), nil
}

// page is etcd's answer to the range request op over snap (sorted by key)
// when its current revision is rev.
func page(snap []*mvccpb.KeyValue, op clientv3.Op, rev int64) *clientv3.GetResponse {
	resp := &clientv3.GetResponse{Header: &etcdserverpb.ResponseHeader{Revision: rev}}
	from, end := string(op.KeyBytes()), string(op.RangeBytes())
	for _, kv := range snap {
		if k := string(kv.Key); k < from || k >= end {
			continue
		}
		if op.Limit() > 0 && int64(len(resp.Kvs)) == op.Limit() {
			resp.More = true
			break
		}
		resp.Kvs = append(resp.Kvs, kv)
	}
	resp.Count = int64(len(resp.Kvs))
	return resp
}

func (e *scriptedEtcd) Watch(ctx context.Context, _ string, _ ...clientv3.OpOption) clientv3.WatchChan {
	ch := make(chan clientv3.WatchResponse, 4)
	e.watches <- ch
	return ch
}

func kv(key, value string) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(value), ModRevision: 1}
}

func answersFor(t *testing.T, ix *Index, name string) []string {
	t.Helper()
	sx, err := ix.Records(name, false)
	if err != nil {
		return []string{err.Error()}
	}
	return hosts(sx)
}

func TestWatcherRelistsAfterCompaction(t *testing.T) {
	etcd := &scriptedEtcd{
		snapshots: [][]*mvccpb.KeyValue{
			{kv("/skydns/test/a", `{"host":"10.0.0.1"}`), kv("/skydns/test/bad", `{`)},
			{kv("/skydns/test/b", `{"host":"10.0.0.2"}`), kv("/skydns/test/bad", `{`)},
		},
		watches: make(chan chan clientv3.WatchResponse, 4),
	}
	ix := NewIndex("skydns")
	reg := prometheus.NewRegistry()
	w := NewWatcher(etcd, "skydns", ix, NewMetrics(reg, ix), slog.New(slog.DiscardHandler), time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	first := <-etcd.watches
	if got := answersFor(t, ix, "test."); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("after the first list: %v", got)
	}
	// A put and a delete arrive through the watch.
	first <- clientv3.WatchResponse{Events: []*clientv3.Event{
		{Type: mvccpb.PUT, Kv: kv("/skydns/test/c", `{"host":"10.0.0.3"}`)},
		{Type: mvccpb.DELETE, Kv: kv("/skydns/test/a", "")},
	}}
	waitFor(t, func() bool { return slices.Equal(answersFor(t, ix, "test."), []string{"10.0.0.3"}) })
	// The watch falls behind a compaction: a fresh list replaces the index.
	first <- clientv3.WatchResponse{CompactRevision: 5}
	<-etcd.watches
	waitFor(t, func() bool { return slices.Equal(answersFor(t, ix, "test."), []string{"10.0.0.2"}) })
	if got := testutilCounter(w.metrics.malformed); got != 1 {
		t.Fatalf("the same malformed value counted %v times across lists, want 1", got)
	}
	if ready, detail := w.Status(); !ready || detail != "ok" {
		t.Fatalf("Status = %v %q", ready, detail)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 2s")
}

func testutilCounter(c prometheus.Counter) float64 {
	return promtestutil.ToFloat64(c)
}

// counted is the value, as a scrape shows it, of c's series with label
// value: the counter shards' counts included.
func counted(c prometheus.Collector, label, value string) float64 {
	return sumByLabel(c, label)[value]
}

func promGauge(g prometheus.Gauge) float64 {
	return promtestutil.ToFloat64(g)
}

// The malformed keys remembered (so each is logged once per write) are
// bounded, and a key deleted or fixed is forgotten: a writer of ever new
// bad keys cannot grow skydns's memory.
func TestMalformedKeysRememberedAreBounded(t *testing.T) {
	ix := NewIndex("skydns")
	w := NewWatcher(nil, "skydns", ix, NewMetrics(prometheus.NewRegistry(), ix), slog.New(slog.DiscardHandler), time.Second)
	for i := range 3 * maxMalformedRemembered {
		w.parse(kv(fmt.Sprintf("/skydns/test/bad%d", i), `{`))
		if n := len(w.malformed); n > maxMalformedRemembered {
			t.Fatalf("%d malformed keys remembered, bound %d", n, maxMalformedRemembered)
		}
	}
	w.parse(kv("/skydns/test/fixed", `{`))
	w.parse(kv("/skydns/test/deleted", `{`))
	w.parse(kv("/skydns/test/fixed", `{"host":"10.0.0.1"}`))
	w.apply([]*clientv3.Event{{Type: mvccpb.DELETE, Kv: kv("/skydns/test/deleted", "")}})
	for _, key := range []string{"/skydns/test/fixed", "/skydns/test/deleted"} {
		if _, ok := w.malformed[key]; ok {
			t.Fatalf("%s still remembered as malformed", key)
		}
	}
}
