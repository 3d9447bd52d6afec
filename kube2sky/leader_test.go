package kube2sky

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

// fencedMem is a memStore whose Apply the fence refuses once fenced is set.
type fencedMem struct {
	*memStore
	fenced atomic.Bool
}

func (f *fencedMem) Apply(ctx context.Context, puts Records, deletes []string) (int64, error) {
	if f.fenced.Load() {
		return 0, ErrFenced
	}
	return f.memStore.Apply(ctx, puts, deletes)
}

// A write the fence refuses ends Run with ErrFenced at once, counted,
// without calling etcd down; the standby's readiness follows its caches.
func TestFencedWriteStopsTheController(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	store := &fencedMem{memStore: &memStore{data: Records{}}}
	cfg := NewConfig()
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	metrics := NewMetrics(prometheus.NewRegistry())
	ctrl, err := NewController(cfg, factory, store, metrics, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	standby := &role{}
	if ready, detail := standby.status(ctrl); ready {
		t.Fatalf("standby with cold informers: ready (%s)", detail)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); factory.Shutdown() }()
	factory.Start(ctx.Done())
	stopped := make(chan error, 1)
	go func() { stopped <- ctrl.Run(ctx, 2, time.Hour) }()
	deadline := time.Now().Add(3 * time.Second)
	for !ctrl.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ready, detail := standby.status(ctrl); !ready {
		t.Fatalf("standby with synced informers: not ready (%s)", detail)
	}

	store.fenced.Store(true)
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "default"},
		Spec: v1.ServiceSpec{ClusterIP: "10.0.0.5", Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}}}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-stopped:
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("Run: %v, want ErrFenced", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run went on after a fenced write")
	}
	if n := testutil.ToFloat64(metrics.fenced); n < 1 {
		t.Errorf("kube2sky_fenced_transactions_total %v, want at least 1", n)
	}
	if !ctrl.registry.Up() {
		t.Error("a fenced write marked etcd down: etcd answered")
	}
}
