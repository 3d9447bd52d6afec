package kube2sky

import (
	"log/slog"

	"github.com/skypod/skypod/internal/etcdclient"
)

// newNoSpaceState follows etcd's NOSPACE alarm as kube2sky sees it: raised
// by a write refused for space or by the alarm list the probe reads,
// cleared by a write etcd took or by a list without it. Refused writes
// between changes are only counted (kube2sky_etcd_errors_total).
// resync is called when it clears: owners refused meanwhile wait in their
// backoff, up to 30 s each, and a full resync retries them all at once.
func newNoSpaceState(metrics *Metrics, log *slog.Logger, resync func()) *etcdclient.NoSpaceState {
	return &etcdclient.NoSpaceState{
		Gauge: metrics.noSpace, Log: log, OnClear: resync,
		Raised: "etcd raised its NOSPACE alarm: it refuses kube2sky's writes, so DNS records stay as they are " +
			"until an operator frees space (compact, defrag) and disarms the alarm; retrying",
		Cleared: "etcd's NOSPACE alarm has cleared: writes are accepted again; resyncing",
	}
}

// EtcdNote is a tail for the /readiness line: what etcd's state means for
// the records, or empty when there is nothing to say.
func (c *Controller) EtcdNote() string {
	return c.registry.noSpace.Note("writes refused, records in etcd may be stale")
}
