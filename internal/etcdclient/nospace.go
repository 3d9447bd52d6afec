package etcdclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// AlarmLister is the part of the etcd client that reads the cluster's
// alarms (clientv3.Maintenance has it).
type AlarmLister interface {
	AlarmList(ctx context.Context) (*clientv3.AlarmResponse, error)
}

// NoSpaceAlarm reports whether any member has raised the NOSPACE alarm.
// Alarms are cluster state, replicated through raft, so the member the
// client asks is as good as any. Reads work under the alarm; every write
// that adds data is refused until an operator frees space and disarms it.
func NoSpaceAlarm(ctx context.Context, c AlarmLister) (bool, error) {
	resp, err := c.AlarmList(ctx)
	if err != nil {
		return false, err
	}
	for _, a := range resp.Alarms {
		if a.Alarm == pb.AlarmType_NOSPACE {
			return true, nil
		}
	}
	return false, nil
}

// IsNoSpace reports whether err is etcd refusing a write at its quota
// ("etcdserver: mvcc: database space exceeded"): the client turns every
// gRPC status it gets into its rpctypes error, so that is what to match.
func IsNoSpace(err error) bool { return errors.Is(err, rpctypes.ErrNoSpace) }

// NoSpaceState follows etcd's NOSPACE alarm for one process. Each change
// is logged once and shown on Gauge, so a full etcd that refuses every
// write, or is probed every few seconds, does not flood the log.
type NoSpaceState struct {
	Gauge   prometheus.Gauge
	Log     *slog.Logger
	Raised  string // Logged as an error when the alarm appears: what it means here.
	Cleared string // Logged when it clears.
	OnClear func() // Called when it clears; may be nil.

	mu    sync.Mutex
	on    bool
	since time.Time
}

// Set records whether the alarm is raised; err is what told, if anything
// but the alarm list did.
func (n *NoSpaceState) Set(on bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.on == on {
		return
	}
	n.on = on
	if on {
		n.since = time.Now()
		n.Gauge.Set(1)
		n.Log.Error(n.Raised, "err", err)
		return
	}
	n.Gauge.Set(0)
	if n.OnClear != nil {
		n.OnClear()
	}
	n.Log.Info(n.Cleared, "after", time.Since(n.since).Round(time.Second).String())
}

// Since reports whether the alarm is raised, and since when.
func (n *NoSpaceState) Since() (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.since, n.on
}

// Note is a tail for a readiness body while the alarm is raised, "; etcd
// NOSPACE alarm raised since <time>: " and meaning, what it means for the
// caller's records; empty otherwise.
func (n *NoSpaceState) Note(meaning string) string {
	since, on := n.Since()
	if !on {
		return ""
	}
	return fmt.Sprintf("; etcd NOSPACE alarm raised since %s: %s", since.UTC().Format(time.RFC3339), meaning)
}

// Check reads the alarm list into n. An error leaves n as it was: the
// caller's own request decides whether etcd is up.
func (n *NoSpaceState) Check(ctx context.Context, c AlarmLister) {
	on, err := NoSpaceAlarm(ctx, c)
	if err != nil {
		n.Log.Debug("cannot list etcd's alarms", "err", err)
		return
	}
	n.Set(on, nil)
}
