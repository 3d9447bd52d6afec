package kube2sky

import (
	"fmt"
	"sync/atomic"
	"time"
)

// heartbeat is what /healthz means: the controller's loop is alive. The
// loop beats on every turn (each probe tick, each retry while etcd is
// down, each poll while the informers fill), so a loop stuck in a
// deadlock or an unbounded call stops beating and fails liveness, while
// an outage it is retrying through does not: a restart would not help.
type heartbeat struct {
	last  atomic.Int64 // UnixNano of the last beat.
	bound time.Duration
	now   func() time.Time
}

// heartbeatBound is how long the loop may go without a beat before it is
// called hung: twice the longest legitimate gap between two beats, which
// is one etcd request (timeout) plus the longest retry backoff plus a
// probe tick. With the default --etcd-mutation-timeout of 10 s: 44 s.
func heartbeatBound(timeout time.Duration) time.Duration {
	return 2 * (timeout + retryMax + probeEvery)
}

func newHeartbeat(bound time.Duration, now func() time.Time) *heartbeat {
	h := &heartbeat{bound: bound, now: now}
	h.beat() // Counting from the start: Run's first turn comes at once.
	return h
}

func (h *heartbeat) beat() { h.last.Store(h.now().UnixNano()) }

// Status is alive while the last beat is within the bound.
func (h *heartbeat) Status() (ok bool, detail string) {
	age := h.now().Sub(time.Unix(0, h.last.Load()))
	if age > h.bound {
		return false, fmt.Sprintf("sync loop has not run for %s (bound %s): hung", age.Round(time.Second), h.bound)
	}
	return true, "ok"
}
