package skydns

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/etcdclient/etcdfake"
)

// The test etcds never fill.
func (e *scriptedEtcd) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	return etcdfake.Alarms(false), nil
}

func (e *revEtcd) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	return etcdfake.Alarms(false), nil
}

// fullEtcd is a scriptedEtcd whose NOSPACE alarm can be raised.
type fullEtcd struct {
	*scriptedEtcd
	full atomic.Bool
}

func (e *fullEtcd) AlarmList(context.Context) (*clientv3.AlarmResponse, error) {
	return etcdfake.Alarms(e.full.Load()), nil
}

// The watcher's probe reports etcd's NOSPACE alarm on the gauge, in /ready's
// body (still ready: the records are served) and in one log line per
// change, and follows its end.
func TestWatcherReportsNoSpace(t *testing.T) {
	etcd := &fullEtcd{scriptedEtcd: &scriptedEtcd{
		snapshots: [][]*mvccpb.KeyValue{{kv("/skydns/test/a", `{"host":"10.0.0.1"}`)}},
		watches:   make(chan chan clientv3.WatchResponse, 4),
	}}
	ix := NewIndex("skydns")
	var logs bytes.Buffer
	w := NewWatcher(etcd, "skydns", ix, NewMetrics(prometheus.NewRegistry(), ix), slog.New(slog.NewTextHandler(&logs, nil)), time.Second)
	w.probeEvery = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	<-etcd.watches

	etcd.full.Store(true)
	waitFor(t, func() bool { return promGauge(w.metrics.noSpace) == 1 })
	if ready, detail := w.Status(); !ready || !strings.Contains(detail, "NOSPACE") {
		t.Errorf("Status at NOSPACE = %v %q, want ready with the alarm in the detail", ready, detail)
	}
	etcd.full.Store(false)
	waitFor(t, func() bool { return promGauge(w.metrics.noSpace) == 0 })
	if ready, detail := w.Status(); !ready || detail != "ok" {
		t.Errorf("Status after the alarm cleared = %v %q", ready, detail)
	}
	cancel()
	<-done // Its probes have stopped: the log is ours to read.
	if raised, cleared := strings.Count(logs.String(), "raised its NOSPACE"), strings.Count(logs.String(), "NOSPACE alarm has cleared"); raised != 1 || cleared != 1 {
		t.Errorf("logged the alarm %d times and its end %d times over many probes, want once each:\n%s", raised, cleared, logs.String())
	}
}
