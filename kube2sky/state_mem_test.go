package kube2sky

import (
	"context"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/skypod/skypod/test/bench/benchrecords"
)

// BenchmarkRegistryMemory is the Go heap the registry keeps for the records
// of BENCH_SERVICES services (100,000 unless set) in the layout
// docs/reliability.md measures with, after a full resync's Refresh, and
// what it holds at the end of a second Refresh's list, the new state built
// beside the old one:
//
//	go test -run '^$' -bench RegistryMemory -benchtime 1x ./kube2sky/
func BenchmarkRegistryMemory(b *testing.B) {
	services := 100000
	if n, err := strconv.Atoi(os.Getenv("BENCH_SERVICES")); err == nil {
		services = n
	}
	l := benchrecords.Layout{Services: services, PerNamespace: 5000, HeadlessPercent: 10, Endpoints: 5, NamedPercent: 10}
	data := Records{}
	for i := range services {
		svc, eps := l.Objects(i)
		r, _, err := namer.serviceOwned(svc, eps)
		if err != nil {
			b.Fatal(err)
		}
		maps.Copy(data, r)
	}
	ctx := context.Background()
	for range b.N {
		store := &sampledStore{data: data}
		r := newTestRegistry(store)
		base := heapInUse()
		if _, _, err := r.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		kept := heapInUse() - base
		store.sample = func() { store.peak = heapInUse() - base }
		if _, _, err := r.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		peak := store.peak
		b.ReportMetric(float64(kept)/(1<<20), "registry-MiB")
		b.ReportMetric(float64(kept)/float64(len(data)), "B/key")
		b.ReportMetric(float64(peak)/(1<<20), "resync-MiB")
		runtime.KeepAlive(r)
	}
}

// sampledStore lists data, as etcd would a page at a time, holding
// nothing of its own, and calls sample once every key is given.
type sampledStore struct {
	memStore
	data   Records
	sample func()
	peak   uint64
}

func (s *sampledStore) List(_ context.Context, each func(key, value string), prefixes ...string) (int64, error) {
	for k, v := range s.data {
		if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			each(k, v)
		}
	}
	if s.sample != nil {
		s.sample()
	}
	return 1, nil
}

// heapInUse is the heap live after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
