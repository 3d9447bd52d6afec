package kube2sky

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skypod/skypod/internal/backoff"
)

// Controller keeps etcd's records equal to what the API server says. Event
// handlers only enqueue owners; workers ask the source for one owner's
// records and the registry for the plan that gets etcd there, and apply it.
type Controller struct {
	source   *source
	registry *Registry
	log      *slog.Logger
	metrics  *Metrics
	skips    *skipLog
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[Owner]

	mu       sync.Mutex
	enqueued map[Owner]time.Time // When an owner's oldest change not yet picked up arrived.
	inFlight map[Owner]time.Time // The same, for changes a worker is syncing now.
	pending  map[Owner]bool      // Owners the first full sync still waits for.
	ready    atomic.Bool
	alive    *heartbeat
	stop     context.CancelCauseFunc // Run's own cancel: a fenced write ends it.
}

// NewController wires handlers into the informers of factory.
func NewController(cfg *Config, factory informers.SharedInformerFactory, store Store, metrics *Metrics, log *slog.Logger) (*Controller, error) {
	namer := Namer{Domain: cfg.Domain, Prefix: cfg.PathPrefix}
	src, watches, err := newSource(namer, cfg.UseEndpointSlices, factory)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		source: src, registry: NewRegistry(store, namer, cfg.EtcdMutationTimeout, metrics, log),
		log: log, metrics: metrics, skips: newSkipLog(log, metrics.skipped),
		// Per-owner exponential backoff, capped at 30 s: an etcd outage must
		// not push retries out for minutes (a relist on recovery also
		// re-adds every owner at once).
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[Owner](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[Owner]{Name: "kube2sky"}),
		enqueued: map[Owner]time.Time{},
		inFlight: map[Owner]time.Time{},
		alive:    newHeartbeat(heartbeatBound(cfg.EtcdMutationTimeout), time.Now),
	}
	for _, w := range watches {
		reg, err := w.informer.AddEventHandler(c.handler(w.owners))
		if err != nil {
			return nil, err
		}
		// The handler's own sync: every object listed at start has reached
		// the queue, not merely the cache.
		c.synced = append(c.synced, reg.HasSynced)
	}
	metrics.watchQueue(c.queue)
	return c, nil
}

// handler enqueues the owners an object affects, before and after a change.
// A resync with no change (same resource version) enqueues nothing.
func (c *Controller) handler(owners func(any) []Owner) cache.ResourceEventHandlerFuncs {
	enqueue := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		for _, o := range owners(obj) {
			c.enqueue(o)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			if resourceVersion(oldObj) == resourceVersion(newObj) {
				return
			}
			enqueue(oldObj)
			enqueue(newObj)
		},
		DeleteFunc: enqueue,
	}
}

func resourceVersion(obj any) string {
	if m, ok := obj.(interface{ GetResourceVersion() string }); ok {
		return m.GetResourceVersion()
	}
	return ""
}

func (c *Controller) enqueue(owner Owner) {
	c.mu.Lock()
	if _, ok := c.enqueued[owner]; !ok {
		c.enqueued[owner] = time.Now()
	}
	c.mu.Unlock()
	c.queue.Add(owner)
}

// Ready reports whether the first full sync has completed. It stays true
// through etcd outages: the records skydns serves are still there, and a
// readiness probe that failed with etcd would take a pod that answers out
// of its Service (docs/architecture.md, "Probes").
func (c *Controller) Ready() bool { return c.ready.Load() }

// Status is /readiness: Ready, with a detail that says when etcd is
// unreachable or refusing writes (NOSPACE) and the records may be behind.
func (c *Controller) Status() (ready bool, detail string) {
	switch {
	case !c.Ready():
		ready, detail = false, "first sync not complete"
	case !c.registry.Up():
		ready, detail = true, "ok; etcd unreachable: records may be behind until it answers"
	default:
		ready, detail = true, "ok"
	}
	return ready, detail + c.EtcdNote()
}

// Alive is /healthz: the loop has turned within its bound (heartbeat).
func (c *Controller) Alive() (ok bool, detail string) { return c.alive.Status() }

// probeEvery is how often an idle kube2sky checks that etcd still answers,
// so readiness and kube2sky_etcd_up follow an outage with no writes pending.
const probeEvery = 2 * time.Second

// Run syncs until ctx ends: a full sync first, then events, with a full
// resync every period and whenever etcd comes back after failing. It
// returns after its workers have stopped.
//
// Under leader election a transaction refused by the fence (ErrFenced)
// ends Run at once with that error: another kube2sky leads, and nothing
// this one still has queued may be written.
func (c *Controller) Run(ctx context.Context, workers int, period time.Duration) error {
	defer c.queue.ShutDown()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	c.stop = stop
	if !c.waitForCaches(ctx) {
		return nil
	}
	c.log.Info("informer caches synced; listing etcd for the full sync")
	// The informers have queued every object by now. A worker that planned
	// one before the registry holds etcd's records would find nothing there
	// and put every key again, each a watch event for every skydns: so the
	// first list comes before any worker starts.
	c.resyncUntilListed(ctx)
	if ctx.Err() != nil {
		return nil
	}
	var g errgroup.Group
	for range workers {
		g.Go(func() error {
			for c.processNext(ctx) {
			}
			return nil
		})
	}
	c.loop(ctx, period)
	c.queue.ShutDown()
	err := g.Wait()
	if cause := context.Cause(ctx); errors.Is(cause, ErrFenced) {
		return cause
	}
	return err
}

// waitForCaches waits for every handler's sync, beating meanwhile: an API
// server that is slow or away is not a hung kube2sky. False when ctx ended.
func (c *Controller) waitForCaches(ctx context.Context) bool {
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		c.alive.beat()
		if !c.cachesSynced() {
			select {
			case <-ctx.Done():
				return false
			case <-poll.C:
				continue
			}
		}
		return true
	}
}

// restartClocks dates every change waiting in the queue from now: a
// standby's changes waited for leadership, not for etcd, and would skew
// kube2sky_event_to_etcd_seconds by how long it stood by.
func (c *Controller) restartClocks() {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for o := range c.enqueued {
		c.enqueued[o] = now
	}
}

// cachesSynced reports whether every handler has seen its informer's list.
func (c *Controller) cachesSynced() bool {
	return !slices.ContainsFunc(c.synced, func(s cache.InformerSynced) bool { return !s() })
}

// loop resyncs every period and after etcd recovers, until ctx ends.
func (c *Controller) loop(ctx context.Context, period time.Duration) {
	resync := time.NewTicker(period)
	defer resync.Stop()
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync.C:
			c.resyncUntilListed(ctx)
		case <-probe.C:
			c.alive.beat()
			c.registry.Probe(ctx, probeEvery)
			if c.registry.TakeRecovered() && c.ready.Load() {
				c.resyncUntilListed(ctx) // Compare everything, in case writes were lost.
			}
		}
	}
}

// retryMax is the longest wait between two resync attempts.
const retryMax = 10 * time.Second

// resyncUntilListed retries resync with backoff while etcd is down. Each
// attempt is a beat: retrying through an outage is the loop alive.
func (c *Controller) resyncUntilListed(ctx context.Context) {
	retry := backoff.Doubling{Min: 100 * time.Millisecond, Max: retryMax}
	for ctx.Err() == nil {
		c.alive.beat()
		if _, err := c.resync(ctx); err == nil {
			return
		}
		retry.Wait(ctx)
	}
}

// resync rebuilds the registry from etcd, then enqueues every owner known
// to either side, and returns how many. The registry's reset is safe on its
// own (see Registry); the owners are enqueued so each is compared with the
// fresh list and repaired.
func (c *Controller) resync(ctx context.Context) (int, error) {
	inEtcd, keys, err := c.registry.Refresh(ctx)
	if err != nil {
		return 0, err
	}
	owners := c.source.owners()
	for _, o := range inEtcd {
		owners[o] = true
	}
	c.mu.Lock()
	if !c.ready.Load() && c.pending == nil {
		c.pending = maps.Clone(owners) // Workers shrink it while we enqueue from owners.
	}
	c.mu.Unlock()
	for o := range owners {
		c.queue.Add(o) // Not enqueue(): a resync is not a change to time.
	}
	c.metrics.lastResync.SetToCurrentTime()
	c.log.Info("resync: comparing every owner with etcd", "owners", len(owners), "keys_in_etcd", keys)
	return len(owners), nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	owner, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(owner)
	if ctx.Err() != nil {
		return false // Stopping: what is left waits for the next start's full sync.
	}
	c.pickUp(owner)
	if err := c.sync(ctx, owner); err != nil {
		if errors.Is(err, ErrFenced) {
			c.metrics.fenced.Inc()
			c.log.Error("write refused by the fence; stepping down", "owner", owner, "err", err)
			c.stop(err)
			return false
		}
		c.putBack(owner)
		c.queue.AddRateLimited(owner)
		return true
	}
	c.queue.Forget(owner)
	c.done(owner)
	return true
}

// sync commits the difference between owner's records in etcd and those
// its objects call for, as one transaction.
func (c *Controller) sync(ctx context.Context, owner Owner) error {
	desired, skipped, err := c.source.desired(owner)
	if err != nil {
		// A malformed object: leave its records as they are, do not retry.
		c.log.Warn("skipping malformed object", "owner", owner, "err", err)
		c.metrics.malformed.Inc()
		return nil
	}
	c.skips.report(owner, skipped)
	plan := c.registry.Plan(owner, desired)
	released, err := c.registry.Apply(ctx, owner, plan)
	if err != nil {
		return err
	}
	for _, o := range released {
		c.enqueue(o) // It waited for a key owner just gave up, a PTR both call for.
	}
	if !plan.Empty() {
		c.log.Debug("synced", "owner", owner, "puts", len(plan.Puts), "deletes", len(plan.Deletes))
	}
	return nil
}

// pickUp moves owner's changes to in flight: those that arrive while it
// syncs wait for the next round, and their latency with them.
func (c *Controller) pickUp(owner Owner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.enqueued[owner]; ok {
		c.inFlight[owner] = t
		delete(c.enqueued, owner)
	}
}

// putBack returns a failed sync's changes to the queue's side.
func (c *Controller) putBack(owner Owner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.inFlight[owner]; ok {
		if later, ok := c.enqueued[owner]; !ok || t.Before(later) {
			c.enqueued[owner] = t
		}
		delete(c.inFlight, owner)
	}
}

// done notes a successful sync: its latency from the event, and progress of
// the first full sync.
func (c *Controller) done(owner Owner) {
	c.metrics.syncs.Inc()
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.inFlight[owner]; ok {
		c.metrics.latency.Observe(time.Since(t).Seconds())
		delete(c.inFlight, owner)
	}
	if c.pending != nil {
		delete(c.pending, owner)
		if len(c.pending) == 0 {
			c.pending = nil
			if !c.ready.Swap(true) {
				c.metrics.ready.Set(1)
				c.log.Info("first full sync complete; ready")
			}
		}
	}
}
