package kube2sky

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skypod/skypod/internal/etcdclient"
)

// Registry is what kube2sky owns in etcd: it plans each owner's change from
// its in-memory copy, commits it through the Store, and rebuilds the copy
// from a list on every full resync. It also knows whether etcd answers.
//
// A full resync cannot overwrite newer state, by construction: the list is
// one snapshot at an etcd revision, every commit records the revision it
// landed at per key, and reset keeps kube2sky's own writes made after the
// list's revision instead of the listed values. So a sync that commits
// while the list is in flight survives the reset that follows it, without
// holding the lock across the list. A list below the highest revision
// kube2sky has seen comes from an etcd restored from an older snapshot or
// wiped: revisions went back in time and no longer order kube2sky's writes
// against the list, so reset trusts that list whole, and the owners queued
// after it re-put whatever the restore lost. A probe that sees the revision
// go back asks for that resync at once.
//
// A key two owners call for (the PTR of an IP two headless services
// select) is held by the first to commit it: the other's plan leaves it
// out and it waits; when the holder's plan deletes the key, Apply returns
// the waiting owners for the controller to sync again, and one claims it.
//
// At etcd's quota (the NOSPACE alarm) etcd is up but refusing writes: it
// still answers lists, so kube2sky stays up and ready, its records as
// current as the last write etcd took; the refused owners wait in their
// backoff, and once the alarm clears a full resync retries them all at
// once (see newNoSpaceState).
type Registry struct {
	store   Store
	namer   Namer
	timeout time.Duration
	log     *slog.Logger
	metrics *Metrics

	mu    sync.Mutex
	state *owned

	up        atomic.Bool
	everUp    atomic.Bool
	recovered atomic.Bool // A full resync is due: etcd answered again after failing, went back in time, or took writes again.

	noSpace *etcdclient.NoSpaceState
}

// NewRegistry keeps the records of namer's domain in store; timeout bounds
// each etcd request.
func NewRegistry(store Store, namer Namer, timeout time.Duration, metrics *Metrics, log *slog.Logger) *Registry {
	r := &Registry{store: store, namer: namer, timeout: timeout, log: log, metrics: metrics, state: newOwned(namer, maphash.MakeSeed())}
	r.noSpace = newNoSpaceState(metrics, log, func() { r.recovered.Store(true) })
	return r
}

// Plan is what turns owner's records in etcd into desired, less the keys
// another owner holds: owner is noted as waiting for those.
func (r *Registry) Plan(owner Owner, desired Records) Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.plan(owner, desired)
}

// Apply commits p, owner's plan, as one transaction (puts first), and
// returns the owners that were waiting for a key it deleted: each should be
// synced again, to claim it.
func (r *Registry) Apply(ctx context.Context, owner Owner, p Plan) ([]Owner, error) {
	if p.Empty() {
		return nil, nil
	}
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	rev, err := r.store.Apply(actx, p.Puts, p.Deletes)
	cancel()
	if err := r.result(err); err != nil {
		if !etcdclient.IsNoSpace(err) && !errors.Is(err, errSuperseded) { // Refusals are certain; a timeout is not.
			r.mu.Lock()
			r.state.maybeApplied(owner, p)
			r.mu.Unlock()
		}
		return nil, fmt.Errorf("sync %s: %w", owner, err)
	}
	r.noSpace.Set(false, nil) // A write etcd took: no alarm now, whatever the last probe saw.
	r.mu.Lock()
	released := r.state.applied(owner, p, rev)
	r.mu.Unlock()
	r.metrics.written.Add(float64(len(p.Puts)))
	r.metrics.deleted.Add(float64(len(p.Deletes)))
	return released, nil
}

// highest is the highest etcd revision kube2sky has seen. Read before a
// list, it is a floor the list's revision stays at or above unless etcd
// went back in time: every write recorded by then had committed before the
// list was asked for.
func (r *Registry) highest() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.highest
}

// Refresh rebuilds the registry from one list of the owned subtrees and
// returns every owner found there and the number of keys listed. The list
// goes straight into a fresh state, a page at a time: what Refresh holds
// beside the registry is that state and one page, not every value listed.
func (r *Registry) Refresh(ctx context.Context) ([]Owner, int, error) {
	prefixes := []string{r.namer.ServicesKey(), r.namer.PodsKey(), r.namer.ReverseKey()}
	for k := range r.namer.DNSVersion() {
		prefixes = append(prefixes, k) // Keys beside it that merely share its prefix are not owned, so reset drops them.
	}
	r.mu.Lock()
	floor, fresh := r.state.highest, newOwned(r.namer, r.state.seed)
	r.mu.Unlock()
	listed := 0
	rev, err := r.store.List(ctx, func(key, value string) {
		fresh.listed(key, value)
		listed++
	}, prefixes...)
	if err := r.result(err); err != nil {
		return nil, 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.reset(fresh, rev, floor) {
		r.log.Warn("etcd's revision went back (restored or wiped): trusting its records over kube2sky's memory of its writes",
			"list_revision", rev, "highest_seen", floor)
	}
	return r.state.owners(), listed, nil
}

// Probe lists the one dns-version key: cheap, and proof etcd answers. A
// revision below the highest seen means etcd went back in time: a full
// resync is due, as after an outage.
func (r *Registry) Probe(ctx context.Context, timeout time.Duration) {
	floor := r.highest()
	pctx, cancel := context.WithTimeout(ctx, min(r.timeout, timeout))
	defer cancel()
	for k := range r.namer.DNSVersion() {
		rev, err := r.store.List(pctx, func(string, string) {}, k)
		if r.result(err) != nil {
			return
		}
		if rev < floor && !r.recovered.Swap(true) {
			r.log.Warn("etcd's revision went back (restored or wiped); resyncing", "revision", rev, "highest_seen", floor)
		}
	}
	r.noSpace.Check(pctx, r.store) // So the alarm, and its end, show with no write pending.
}

// Up reports whether etcd answered kube2sky's last request.
func (r *Registry) Up() bool { return r.up.Load() }

// TakeRecovered reports, once, that a full resync is due: etcd answered
// again after failing, its revision went back, or its NOSPACE alarm cleared.
func (r *Registry) TakeRecovered() bool { return r.recovered.Swap(false) }

// result notes the outcome of one etcd request and returns its error. A
// write refused for space is an answer: etcd is up, and the alarm is what
// to report (once, not per refused write).
func (r *Registry) result(err error) error {
	if errors.Is(err, ErrFenced) || errors.Is(err, errSuperseded) {
		return err // etcd answered: it refused a stale leader's write, or one its renewed fence had superseded.
	}
	if err != nil {
		r.metrics.etcdErrors.Inc()
	}
	switch {
	case etcdclient.IsNoSpace(err):
		r.noSpace.Set(true, err)
	case err != nil:
		if r.up.Swap(false) {
			r.log.Error("etcd request failed; retrying with backoff", "err", err)
		}
		r.metrics.etcdUp.Set(0)
		return err
	}
	r.answered()
	return err
}

// answered notes that etcd answered: after a failure, a full resync is due.
func (r *Registry) answered() {
	if !r.up.Swap(true) {
		r.metrics.etcdUp.Set(1)
		if r.everUp.Swap(true) {
			r.recovered.Store(true) // Not at the first answer: the first resync is under way then.
		}
	}
}
