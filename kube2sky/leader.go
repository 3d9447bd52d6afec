package kube2sky

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// errLeadershipLost ends a leader whose Lease was not renewed in time. It
// exits rather than standing by again, as kube-controller-manager does:
// its queue and registry belong to a term that is over, and the restart
// comes back as a standby whose informers fill while another leads.
var errLeadershipLost = errors.New("leader election lost: stopping so that no write of this kube2sky follows another leader's")

// role is what /readiness and /healthz need to know of the election.
// Without --leader-elect a kube2sky always leads.
type role struct {
	leading atomic.Bool
	// warm: the informers had synced while standing by, so a new leader
	// is ready at once rather than after its first full sync.
	warm atomic.Bool
}

// Identity is the holder name in the Lease: POD_NAME when the manifest
// passes it (unique and readable in `kubectl get lease`), else the
// hostname with a random suffix, so two kube2skys on one host differ.
func Identity() (string, error) {
	if pod := os.Getenv("POD_NAME"); pod != "" {
		return pod, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("leader election identity: %w", err)
	}
	return host + "_" + string(uuid.NewUUID()), nil
}

// elector runs the controller only while this kube2sky holds the Lease.
type elector struct {
	cfg     LeaderElection
	client  kubernetes.Interface
	etcd    clientv3.KV
	fence   *Fence
	ctrl    *Controller
	role    *role
	metrics *Metrics
	log     *slog.Logger
	started atomic.Bool // OnStartedLeading has run.
}

// run campaigns until ctx ends, the lease is lost or the fence refuses a
// write; only the last two are errors. The controller's informers run
// meanwhile (Run starts them), so a standby that wins starts from a warm
// cache: the first full sync lists etcd only.
func (e *elector) run(ctx context.Context, period time.Duration) error {
	id, err := Identity()
	if err != nil {
		return err
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	led := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.ResourceNamespace, Name: e.cfg.ResourceName},
			Client:     e.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
		},
		LeaseDuration: e.cfg.LeaseDuration, RenewDeadline: e.cfg.RenewDeadline, RetryPeriod: e.cfg.RetryPeriod,
		// On shutdown the lease is given up, so a standby takes over at
		// once instead of after a lease duration.
		ReleaseOnCancel: true,
		Name:            "kube2sky",
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				e.started.Store(true)
				err := e.lead(lctx, period)
				led <- err
				cancel() // A fenced leader gives the lease up too.
			},
			OnStoppedLeading: func() { e.stepDown() },
			OnNewLeader:      func(holder string) { e.log.Info("leader observed", "leader", holder, "me", holder == id) },
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	e.log.Info("standing by for the leader lease", "identity", id,
		"lease", e.cfg.ResourceNamespace+"/"+e.cfg.ResourceName, "fence", e.fence.Key)
	le.Run(ectx)
	return e.outcome(ctx, led)
}

// outcome waits for the controller once the elector has returned: the
// elector does not wait for OnStartedLeading, and a leader must have
// stopped writing before Run returns (and the etcd client closes).
func (e *elector) outcome(ctx context.Context, led chan error) error {
	if ctx.Err() != nil && !e.started.Load() {
		return nil // Stopped while standing by.
	}
	// Otherwise the elector returned because leadership ended, after
	// starting OnStartedLeading, whose lctx has ended: it returns soon.
	if err := <-led; err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	return errLeadershipLost
}

// lead takes the fence's next term, then syncs until lctx ends.
func (e *elector) lead(lctx context.Context, period time.Duration) error {
	term, err := e.fence.Acquire(lctx, e.etcd)
	if err != nil {
		if lctx.Err() != nil {
			return nil
		}
		return err
	}
	e.role.warm.Store(e.ctrl.cachesSynced())
	e.ctrl.alive.beat() // The standby's heartbeat is old: Run beats from here on.
	e.ctrl.restartClocks()
	e.role.leading.Store(true)
	e.metrics.leader.Set(1)
	e.metrics.transition.Inc()
	e.log.Info("became leader; writing to etcd", "term", term, "warm", e.role.warm.Load())
	return e.ctrl.Run(lctx, workers, period)
}

func (e *elector) stepDown() {
	if e.role.leading.Swap(false) {
		e.metrics.leader.Set(0)
		e.metrics.transition.Inc()
		e.log.Warn("stopped leading")
	}
}

// status is /readiness under --leader-elect. A standby serves no DNS and
// writes nothing, so its pod is ready once it could take over warm (its
// informers have synced): a rollout then waits for that before stopping
// the leader, and a standby is not reported broken for not leading. A
// leader is ready as the controller says, except that a warm standby that
// has just won stays ready through its first full sync, which only lists
// etcd: readiness must not flap at every takeover.
func (r *role) status(ctrl *Controller) (bool, string) {
	if !r.leading.Load() {
		if ctrl.cachesSynced() {
			return true, "ok; standby: informers synced, ready to take over"
		}
		return false, "standby: informers not synced yet"
	}
	ready, detail := ctrl.Status()
	if !ready && r.warm.Load() {
		return true, "ok; new leader: first full sync in progress"
	}
	return ready, detail
}

// alive is /healthz under --leader-elect: a standby's sync loop does not
// run, so its heartbeat says nothing; the leader's does.
func (r *role) alive(ctrl *Controller) (bool, string) {
	if !r.leading.Load() {
		return true, "ok; standby"
	}
	return ctrl.Alive()
}
