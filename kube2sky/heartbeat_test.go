package kube2sky

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestHeartbeatGoesStaleAfterItsBound(t *testing.T) {
	now := time.Unix(1700000000, 0)
	h := newHeartbeat(time.Minute, func() time.Time { return now })
	now = now.Add(time.Minute)
	if ok, detail := h.Status(); !ok {
		t.Fatalf("at the bound: %s, want alive", detail)
	}
	now = now.Add(time.Second)
	if ok, detail := h.Status(); ok || !strings.Contains(detail, "hung") {
		t.Fatalf("past the bound: %v %q, want not alive", ok, detail)
	}
	h.beat()
	if ok, detail := h.Status(); !ok {
		t.Fatalf("after a beat: %s, want alive", detail)
	}
}

// The bound covers the longest gap a healthy loop leaves: an etcd request
// that times out, then the longest backoff before the next attempt.
func TestHeartbeatBoundCoversARetryWhileEtcdIsDown(t *testing.T) {
	timeout := 10 * time.Second
	if b := heartbeatBound(timeout); b <= timeout+retryMax+probeEvery {
		t.Fatalf("bound %s would call a loop retrying through an outage hung", b)
	}
}

// /healthz is 503 once the loop stops beating, 200 while it beats; the
// controller's own loop beats (every probe tick) while it runs.
func TestHealthzFollowsTheLoopsHeartbeat(t *testing.T) {
	f := start(t, nil)
	mux := opsMux(prometheus.NewRegistry(), f.ctrl, nil)
	get := func() int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code
	}
	first := f.ctrl.alive.last.Load()
	waitFor(t, "a beat from the running loop", func() bool { return f.ctrl.alive.last.Load() != first })
	if code := get(); code != http.StatusOK {
		t.Fatalf("/healthz = %d while the loop runs, want 200", code)
	}
	f.ctrl.alive.last.Store(time.Now().Add(-2 * f.ctrl.alive.bound).UnixNano()) // As if hung since then.
	if code := get(); code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz = %d with a stale heartbeat, want 503", code)
	}
}

// Once the first full sync is done, an etcd outage changes /readiness's
// detail, never its code.
func TestReadinessStaysThroughAnEtcdOutage(t *testing.T) {
	f := start(t, nil)
	f.store.mu.Lock()
	f.store.down = true
	f.store.mu.Unlock()
	waitFor(t, "the probe to notice etcd is down", func() bool { return !f.ctrl.registry.Up() })
	rec := httptest.NewRecorder()
	opsMux(prometheus.NewRegistry(), f.ctrl, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readiness", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "etcd unreachable") {
		t.Fatalf("/readiness = %d %q, want 200 saying etcd is unreachable", rec.Code, rec.Body.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
