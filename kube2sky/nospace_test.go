package kube2sky

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/etcdclient/etcdfake"
)

// AlarmList makes memStore a Store: it never fills.
func (m *memStore) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	return etcdfake.Alarms(false), nil
}

// fullStore is a memStore that can be at etcd's quota: writes refused as
// etcd refuses them, the alarm in its list.
type fullStore struct {
	*memStore
	full atomic.Bool
}

func (f *fullStore) Apply(ctx context.Context, puts Records, deletes []string) (int64, error) {
	if f.full.Load() {
		return 0, rpctypes.ErrNoSpace
	}
	return f.memStore.Apply(ctx, puts, deletes)
}

func (f *fullStore) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	return etcdfake.Alarms(f.full.Load()), nil
}

// At NOSPACE etcd is up but refusing writes: the gauge and the readiness
// note say so, one line is logged however many writes are refused, and
// the refusals neither mark etcd down nor ask for a resync; the alarm's
// end, seen by the probe, asks for one so the refused owners are retried.
func TestNoSpaceIsReportedOnceAndItsEndResyncs(t *testing.T) {
	store := &fullStore{memStore: &memStore{data: Records{}}}
	var logs bytes.Buffer
	metrics := NewMetrics(prometheus.NewRegistry())
	r := NewRegistry(store, namer, time.Second, metrics, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	web := serviceOwner("default", "web")
	desired := Records{"/skydns/local/cluster/svc/default/web/f488b1a2": `{"host":"10.0.0.1"}`}
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	store.full.Store(true)
	for range 3 {
		if _, err := r.Apply(ctx, web, r.Plan(web, desired)); !errors.Is(err, rpctypes.ErrNoSpace) {
			t.Fatalf("apply at NOSPACE: %v", err)
		}
	}
	r.Probe(ctx, time.Second)
	if got := promtestutil.ToFloat64(metrics.noSpace); got != 1 {
		t.Errorf("kube2sky_etcd_nospace = %v at NOSPACE, want 1", got)
	}
	if !r.Up() || promtestutil.ToFloat64(metrics.etcdUp) != 1 {
		t.Error("etcd refusing writes for space was taken for etcd down")
	}
	if r.TakeRecovered() {
		t.Error("a refused write asked for a resync")
	}
	if n := strings.Count(logs.String(), "NOSPACE alarm"); n != 1 {
		t.Errorf("logged the alarm %d times for 3 refused writes and a probe, want once:\n%s", n, logs.String())
	}
	if _, on := r.noSpace.Since(); !on {
		t.Error("the alarm is not noted for /readiness")
	}

	store.full.Store(false) // Space freed, alarm disarmed; no write pending.
	r.Probe(ctx, time.Second)
	if got := promtestutil.ToFloat64(metrics.noSpace); got != 0 {
		t.Errorf("kube2sky_etcd_nospace = %v after the alarm cleared, want 0", got)
	}
	if !r.TakeRecovered() {
		t.Error("the alarm's end did not ask for a resync of the refused owners")
	}
	if n := strings.Count(logs.String(), "NOSPACE alarm has cleared"); n != 1 {
		t.Errorf("clearing logged %d times, want once", n)
	}
	if _, err := r.Apply(ctx, web, r.Plan(web, desired)); err != nil {
		t.Fatalf("apply after the alarm cleared: %v", err)
	}
}
