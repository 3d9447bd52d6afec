package kube2sky

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skypod/skypod/internal/backoff"
)

// podIPIndex finds pods by namespace and dashed IP: host-network pods share
// one IP, and its record stays while any of them has it.
const podIPIndex = "nsip"

// Controller keeps etcd's records equal to what the API server says. Event
// handlers only enqueue owner IDs; workers compute one owner's records and
// commit the difference from what kube2sky holds in etcd.
type Controller struct {
	namer   Namer
	store   Store
	log     *slog.Logger
	metrics *Metrics
	timeout time.Duration
	slices  bool

	services  corelisters.ServiceLister
	endpoints corelisters.EndpointsLister
	epSlices  discoverylisters.EndpointSliceLister
	pods      cache.Indexer
	synced    []cache.InformerSynced

	queue workqueue.TypedRateLimitingInterface[string]

	mu         sync.Mutex
	state      *owned
	enqueued   map[string]time.Time // When an owner's oldest unsynced change arrived.
	pending    map[string]bool      // Owners the first full sync still waits for.
	ready      atomic.Bool
	etcdUp     atomic.Bool
	needRelist atomic.Bool
}

// NewController wires handlers into the informers of factory.
func NewController(cfg *Config, client kubernetes.Interface, factory informers.SharedInformerFactory, store Store, metrics *Metrics, log *slog.Logger) (*Controller, error) {
	c := &Controller{
		namer: Namer{Domain: cfg.Domain, Prefix: cfg.PathPrefix}, store: store, log: log, metrics: metrics,
		timeout: cfg.EtcdMutationTimeout, slices: cfg.UseEndpointSlices,
		// Per-owner exponential backoff, capped at 30 s: an etcd outage must
		// not push retries out for minutes (a relist on recovery also
		// re-adds every owner at once).
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "kube2sky"}),
		enqueued: map[string]time.Time{},
	}
	c.state = newOwned(c.namer)

	svcInformer := factory.Core().V1().Services()
	c.services = svcInformer.Lister()
	if err := c.watch(svcInformer.Informer(), func(obj any) []string {
		s := obj.(*v1.Service)
		return []string{serviceOwner(s.Namespace, s.Name)}
	}); err != nil {
		return nil, err
	}

	if c.slices {
		inf := factory.Discovery().V1().EndpointSlices()
		c.epSlices = inf.Lister()
		if err := c.watch(inf.Informer(), func(obj any) []string {
			es := obj.(*discoveryv1.EndpointSlice)
			if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
				return []string{serviceOwner(es.Namespace, svc)}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	} else {
		inf := factory.Core().V1().Endpoints()
		c.endpoints = inf.Lister()
		if err := c.watch(inf.Informer(), func(obj any) []string {
			e := obj.(*v1.Endpoints)
			return []string{serviceOwner(e.Namespace, e.Name)}
		}); err != nil {
			return nil, err
		}
	}

	podInformer := factory.Core().V1().Pods().Informer()
	if err := podInformer.AddIndexers(cache.Indexers{podIPIndex: func(obj any) ([]string, error) {
		p := obj.(*v1.Pod)
		var keys []string
		for _, ip := range podIPs(p) {
			keys = append(keys, p.Namespace+"/"+dashedIP(ip))
		}
		return keys, nil
	}}); err != nil {
		return nil, err
	}
	c.pods = podInformer.GetIndexer()
	if err := c.watch(podInformer, func(obj any) []string {
		p := obj.(*v1.Pod)
		var owners []string
		for _, ip := range podIPs(p) {
			owners = append(owners, podOwner(p.Namespace, ip))
		}
		return owners
	}); err != nil {
		return nil, err
	}
	metrics.watchQueue(c.queue)
	return c, nil
}

// handler enqueues the owners an object affects, before and after a change.
// A resync with no change (same resource version) enqueues nothing.
// watch queues the owners of every change inf sees, and counts inf among
// the caches that must sync before the first resync.
func (c *Controller) watch(inf cache.SharedIndexInformer, owners func(any) []string) error {
	if _, err := inf.AddEventHandler(c.handler(owners)); err != nil {
		return err
	}
	c.synced = append(c.synced, inf.HasSynced)
	return nil
}

func (c *Controller) handler(owners func(any) []string) cache.ResourceEventHandlerFuncs {
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

func (c *Controller) enqueue(owner string) {
	c.mu.Lock()
	if _, ok := c.enqueued[owner]; !ok {
		c.enqueued[owner] = time.Now()
	}
	c.mu.Unlock()
	c.queue.Add(owner)
}

// Ready reports whether the records in etcd can be trusted: the first full
// sync has completed and etcd is answering.
func (c *Controller) Ready() bool { return c.ready.Load() && c.etcdUp.Load() }

// probeEvery is how often an idle kube2sky checks that etcd still answers,
// so readiness and kube2sky_etcd_up follow an outage with no writes pending.
const probeEvery = 2 * time.Second

// Run syncs until ctx ends: a full sync first, then events, with a full
// resync every period and whenever etcd comes back after failing.
func (c *Controller) Run(ctx context.Context, workers int, period time.Duration) error {
	defer c.queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return errors.New("informer caches did not sync")
	}
	c.log.Info("informer caches synced; starting the full sync")
	for i := 0; i < workers; i++ {
		go wait.UntilWithContext(ctx, c.worker, time.Second)
	}
	resync := time.NewTicker(period)
	defer resync.Stop()
	probe := time.NewTicker(probeEvery)
	defer probe.Stop()
	c.resyncUntilListed(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-resync.C:
			c.resyncUntilListed(ctx)
		case <-probe.C:
			c.probe(ctx)
			if c.needRelist.Swap(false) {
				c.resyncUntilListed(ctx)
			}
		}
	}
}

// probe lists the one dns-version key: cheap, and proof etcd answers.
func (c *Controller) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, min(c.timeout, probeEvery))
	defer cancel()
	for k := range c.namer.DNSVersion() {
		if _, err := c.store.List(pctx, k); err != nil {
			c.etcdFailed(err)
			return
		}
	}
	c.etcdOK()
}

// resyncUntilListed lists what kube2sky owns in etcd, retrying with backoff
// while etcd is down, then enqueues every owner known to either side.
func (c *Controller) resyncUntilListed(ctx context.Context) {
	retry := backoff.Doubling{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for ctx.Err() == nil {
		err := c.resync(ctx)
		if err == nil {
			return
		}
		c.etcdFailed(err)
		retry.Wait(ctx)
	}
}

func (c *Controller) resync(ctx context.Context) error {
	listed := Records{}
	for _, prefix := range []string{c.namer.ServicesKey(), c.namer.PodsKey(), c.namer.ReverseKey()} {
		lctx, cancel := context.WithTimeout(ctx, c.timeout)
		r, err := c.store.List(lctx, prefix)
		cancel()
		if err != nil {
			return err
		}
		for k, v := range r {
			listed[k] = v
		}
	}
	for k := range c.namer.DNSVersion() {
		lctx, cancel := context.WithTimeout(ctx, c.timeout)
		r, err := c.store.List(lctx, k)
		cancel()
		if err != nil {
			return err
		}
		if v, ok := r[k]; ok {
			listed[k] = v
		}
	}
	c.etcdOK()
	owners := map[string]bool{dnsVersionOwner: true}
	c.mu.Lock()
	c.state.reset(listed)
	for _, o := range c.state.owners() {
		owners[o] = true
	}
	c.mu.Unlock()
	svcs, _ := c.services.List(labels.Everything())
	for _, s := range svcs {
		owners[serviceOwner(s.Namespace, s.Name)] = true
	}
	for _, obj := range c.pods.List() {
		p := obj.(*v1.Pod)
		for _, ip := range podIPs(p) {
			owners[podOwner(p.Namespace, ip)] = true
		}
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
	c.log.Info("resync: comparing every owner with etcd", "owners", len(owners), "keys_in_etcd", len(listed))
	return nil
}

func (c *Controller) worker(ctx context.Context) {
	for c.processNext(ctx) {
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	owner, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(owner)
	if err := c.sync(ctx, owner); err != nil {
		c.etcdFailed(err)
		c.queue.AddRateLimited(owner)
		return true
	}
	c.queue.Forget(owner)
	return true
}

// sync commits the difference between owner's records in etcd and those
// its objects call for, as one transaction.
func (c *Controller) sync(ctx context.Context, owner string) error {
	desired, err := c.desired(owner)
	if err != nil {
		// A malformed object: leave its records as they are, do not retry.
		c.log.Warn("skipping malformed object", "owner", owner, "err", err)
		c.metrics.malformed.Inc()
		c.done(owner)
		return nil
	}
	c.mu.Lock()
	puts, deletes := c.state.diff(owner, desired)
	c.mu.Unlock()
	if len(puts) > 0 || len(deletes) > 0 {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		err := c.store.Apply(actx, puts, deletes)
		cancel()
		if err != nil {
			return fmt.Errorf("sync %s: %w", owner, err)
		}
		c.etcdOK()
		c.mu.Lock()
		c.state.applied(owner, puts, deletes)
		c.mu.Unlock()
		c.metrics.written.Add(float64(len(puts)))
		c.metrics.deleted.Add(float64(len(deletes)))
		c.log.Debug("synced", "owner", owner, "puts", len(puts), "deletes", len(deletes))
	}
	c.done(owner)
	return nil
}

// done notes a successful sync: its latency from the event, and progress of
// the first full sync.
func (c *Controller) done(owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.enqueued[owner]; ok {
		c.metrics.latency.Observe(time.Since(t).Seconds())
		delete(c.enqueued, owner)
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

// desired is what etcd should hold for owner.
func (c *Controller) desired(owner string) (Records, error) {
	kind, rest, _ := strings.Cut(owner, "/")
	switch kind {
	case "svc":
		ns, name, _ := strings.Cut(rest, "/")
		return c.serviceDesired(ns, name)
	case "pod":
		ns, dashed, _ := strings.Cut(rest, "/")
		return c.podDesired(ns, dashed), nil
	case dnsVersionOwner:
		return c.namer.DNSVersion(), nil
	}
	return nil, fmt.Errorf("unknown owner %q", owner)
}

func (c *Controller) serviceDesired(ns, name string) (Records, error) {
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return Records{}, nil // Deleted: everything it owned goes.
	}
	if err != nil {
		return nil, err
	}
	eps, err := c.endpointsOf(ns, name)
	if err != nil {
		return nil, err
	}
	out, err := c.namer.ServiceRecords(svc, eps)
	if err != nil {
		return nil, err
	}
	rev, err := c.namer.ReverseRecords(svc, eps)
	if err != nil {
		return nil, err
	}
	for k, v := range rev {
		out[k] = v
	}
	return out, nil
}

// endpointsOf returns the service's endpoints, from EndpointSlices when
// configured (merged into the Endpoints shape), or nil if there are none.
func (c *Controller) endpointsOf(ns, name string) (*v1.Endpoints, error) {
	if !c.slices {
		eps, err := c.endpoints.Endpoints(ns).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return eps, err
	}
	slices, err := c.epSlices.EndpointSlices(ns).List(serviceSelector(name))
	if err != nil || len(slices) == 0 {
		return nil, err
	}
	return endpointsFromSlices(ns, name, slices), nil
}

func (c *Controller) podDesired(ns, dashed string) Records {
	out := Records{}
	dir := c.namer.PodsKey() + ns + "/" + dashed + "/"
	objs, _ := c.pods.ByIndex(podIPIndex, ns+"/"+dashed)
	for _, obj := range objs {
		for k, v := range c.namer.PodRecords(obj.(*v1.Pod)) {
			if strings.HasPrefix(k, dir) {
				out[k] = v
			}
		}
	}
	return out
}

func (c *Controller) etcdFailed(err error) {
	c.metrics.etcdErrors.Inc()
	if c.etcdUp.Swap(false) {
		c.log.Error("etcd write failed; retrying with backoff", "err", err)
	}
	c.metrics.etcdUp.Set(0)
}

func (c *Controller) etcdOK() {
	if !c.etcdUp.Swap(true) {
		c.metrics.etcdUp.Set(1)
		if c.ready.Load() {
			// Back after a failure: compare everything, in case writes were lost.
			c.needRelist.Store(true)
		}
	}
}
