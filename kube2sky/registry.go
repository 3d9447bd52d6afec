package kube2sky

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
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
// holding the lock across the list.
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
	recovered atomic.Bool // etcd answered again after failing; a full resync is due.
}

// NewRegistry keeps the records of namer's domain in store; timeout bounds
// each etcd request.
func NewRegistry(store Store, namer Namer, timeout time.Duration, metrics *Metrics, log *slog.Logger) *Registry {
	return &Registry{store: store, namer: namer, timeout: timeout, log: log, metrics: metrics, state: newOwned(namer)}
}

// Plan is what turns owner's records in etcd into desired.
func (r *Registry) Plan(owner Owner, desired Records) Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return planChanges(desired, r.state.current(owner, desired))
}

// Apply commits p, owner's plan, as one transaction (puts first).
func (r *Registry) Apply(ctx context.Context, owner Owner, p Plan) error {
	if p.Empty() {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	rev, err := r.store.Apply(actx, p.Puts, p.Deletes)
	cancel()
	if err := r.result(err); err != nil {
		return fmt.Errorf("sync %s: %w", owner, err)
	}
	r.mu.Lock()
	r.state.applied(owner, p, rev)
	r.mu.Unlock()
	r.metrics.written.Add(float64(len(p.Puts)))
	r.metrics.deleted.Add(float64(len(p.Deletes)))
	return nil
}

// Refresh rebuilds the registry from one list of the owned subtrees and
// returns every owner found there and the number of keys listed.
func (r *Registry) Refresh(ctx context.Context) ([]Owner, int, error) {
	prefixes := []string{r.namer.ServicesKey(), r.namer.PodsKey(), r.namer.ReverseKey()}
	for k := range r.namer.DNSVersion() {
		prefixes = append(prefixes, k) // Keys beside it that merely share its prefix are not owned, so reset drops them.
	}
	lctx, cancel := context.WithTimeout(ctx, r.timeout)
	listed, rev, err := r.store.List(lctx, prefixes...)
	cancel()
	if err := r.result(err); err != nil {
		return nil, 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state.reset(listed, rev)
	return r.state.owners(), len(listed), nil
}

// Probe lists the one dns-version key: cheap, and proof etcd answers.
func (r *Registry) Probe(ctx context.Context, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, min(r.timeout, timeout))
	defer cancel()
	for k := range r.namer.DNSVersion() {
		_, _, err := r.store.List(pctx, k)
		if r.result(err) != nil {
			return
		}
	}
}

// Up reports whether etcd answered kube2sky's last request.
func (r *Registry) Up() bool { return r.up.Load() }

// TakeRecovered reports, once, that etcd answered again after failing.
func (r *Registry) TakeRecovered() bool { return r.recovered.Swap(false) }

// result notes the outcome of one etcd request and returns its error.
func (r *Registry) result(err error) error {
	if err != nil {
		r.metrics.etcdErrors.Inc()
		if r.up.Swap(false) {
			r.log.Error("etcd request failed; retrying with backoff", "err", err)
		}
		r.metrics.etcdUp.Set(0)
		return err
	}
	if !r.up.Swap(true) {
		r.metrics.etcdUp.Set(1)
		if r.everUp.Swap(true) {
			r.recovered.Store(true) // Not at the first answer: the first resync is under way then.
		}
	}
	return nil
}
