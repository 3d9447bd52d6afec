//go:build integration

package test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/test/harness"
)

// Short leases, so failovers take seconds: the renew deadline leaves the
// leader one second to stop before its lease can be taken.
const (
	leaseDuration = 4 * time.Second
	retryPeriod   = 500 * time.Millisecond
	// takeoverBound is the worst a standby can take on a quiet machine, and
	// room for a loaded one: client-go counts the lease from when the
	// standby saw it renewed, and it polls every retry period with a jitter
	// factor of 1.2, so both that sighting and the one that finds the lease
	// lapsed can each come up to 2.2 retry periods late; then the fence's
	// CAS and the first list.
	takeoverBound = leaseDuration + 2*22*retryPeriod/10 + 3*time.Second
)

// electedKube2sky is one kube2sky of several on one etcd, electing a leader.
type electedKube2sky struct {
	name    string
	proc    *harness.Process
	healthz string
}

// electionPods starts kube2skys with --leader-elect against one etcd (of
// one member or several: etcdServer is --etcd-server), and is how to start
// more (restarts) later. extra are more flags (another Lease).
type electionPods struct {
	cluster    *harness.Cluster
	etcdServer string
	extra      []string
}

func (e *electionPods) start(t testing.TB, name string) *electedKube2sky {
	t.Helper()
	port := harness.FreePort(t)
	k := &electedKube2sky{name: name, healthz: fmt.Sprintf("http://127.0.0.1:%d", port)}
	k.proc = harness.Start(t, name, harness.Binary(t, "kube2sky"), append([]string{
		"--domain=cluster.local", "--etcd-server=" + e.etcdServer, "--kubecfg-file=" + e.cluster.Kubeconfig(t, harness.Kube2skyToken),
		fmt.Sprintf("--healthz-port=%d", port), "--leader-elect", "--leader-elect-lease-duration=4s",
		"--leader-elect-renew-deadline=3s", fmt.Sprintf("--leader-elect-retry-period=%s", retryPeriod),
	}, e.extra...), "POD_NAME="+name)
	harness.Eventually(t, 30*time.Second, name+" ready", func() error {
		if exited, err := k.proc.Exited(); exited {
			t.Fatalf("%s exited: %v", name, err)
		}
		code, body, err := harness.HTTPGet(k.healthz + "/readiness")
		if err != nil || code != 200 {
			return fmt.Errorf("/readiness %d %q %v", code, body, err)
		}
		return nil
	})
	return k
}

// leader waits until exactly one of ks reports kube2sky_leader 1 and the
// others 0, and returns it.
func leader(t testing.TB, within time.Duration, ks ...*electedKube2sky) *electedKube2sky {
	t.Helper()
	var found *electedKube2sky
	harness.Eventually(t, within, "exactly one leader", func() error {
		found = nil
		for _, k := range ks {
			switch v := metricValue(t, k.healthz, "kube2sky_leader"); {
			case v == 1 && found != nil:
				return fmt.Errorf("%s and %s both lead", found.name, k.name)
			case v == 1:
				found = k
			}
		}
		if found == nil {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	return found
}

// etcdMatchesServices compares etcd's records of namespace ns with what
// its services call for: nothing missing, nothing stale.
func etcdMatchesServices(t *testing.T, e *electionPods, etcd *clientv3.Client, ns string) error {
	t.Helper()
	namer := kube2sky.Namer{Domain: "cluster.local.", Prefix: "skydns"}
	want := kube2sky.Records{}
	svcs, err := e.cluster.Admin.CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range svcs.Items {
		recs, _, err := namer.ServiceRecords(&svcs.Items[i], nil)
		if err != nil {
			return err
		}
		maps.Copy(want, recs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := etcd.Get(ctx, namer.ServicesKey()+ns+"/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	got := kube2sky.Records{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("etcd holds %v, the services call for %v", got, want)
	}
	return nil
}

func createClusterIPService(t *testing.T, e *electionPods, ns, name string) {
	t.Helper()
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}}}
	if _, err := e.cluster.Admin.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestKube2skyLeaderElection: two kube2skys, one writer; the standby takes
// over a killed leader within the lease duration and a bound; a stale
// leader (paused past its lease, then resumed) has its writes refused by
// the fence and exits, and etcd stays what the services call for.
func TestKube2skyLeaderElection(t *testing.T) {
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	member := harness.StartEtcd(t)
	e := &electionPods{cluster: cluster, etcdServer: member.URL}
	etcd := member.Client()
	ns := "dns-leader"
	createNamespace(t, cluster.Admin, ns)
	converged := func(what string) {
		t.Helper()
		harness.Eventually(t, 10*time.Second, what, func() error { return etcdMatchesServices(t, e, etcd, ns) })
	}

	a, b := e.start(t, "kube2sky-a"), e.start(t, "kube2sky-b")
	first := leader(t, 15*time.Second, a, b)
	standby := map[*electedKube2sky]*electedKube2sky{a: b, b: a}[first]
	createClusterIPService(t, e, ns, "one")
	converged("records of one")

	// SIGKILL: no release of the lease; the standby waits for it to expire.
	killed := time.Now()
	first.proc.Kill()
	second := leader(t, takeoverBound, standby)
	took := time.Since(killed)
	createClusterIPService(t, e, ns, "two")
	converged("records of two, written by the new leader")
	t.Logf("takeover after SIGKILL of the leader: %s to kube2sky_leader 1 (lease %s); records of a service created then in etcd %s after the kill",
		took.Round(time.Millisecond), leaseDuration, time.Since(killed).Round(time.Millisecond))

	// SIGSTOP: the leader goes stale, still believing it leads.
	third := e.start(t, "kube2sky-c")
	if l := leader(t, 5*time.Second, second, third); l != second {
		t.Fatalf("%s leads, want %s still", l.name, second.name)
	}
	stopped := time.Now()
	signal(t, second, syscall.SIGSTOP)
	leader(t, takeoverBound, third)
	t.Logf("takeover from a stalled leader: %s", time.Since(stopped).Round(time.Millisecond))
	createClusterIPService(t, e, ns, "three")
	if err := cluster.Admin.CoreV1().Services(ns).Delete(context.Background(), "one", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	converged("records of three, one's gone, by the third leader")

	// Resumed, the stale leader sees those events and writes them under
	// its old term: the fence refuses, and it exits.
	signal(t, second, syscall.SIGCONT)
	harness.Eventually(t, 15*time.Second, "the stale leader exits", func() error {
		if exited, _ := second.proc.Exited(); !exited {
			return fmt.Errorf("%s still running", second.name)
		}
		return nil
	})
	log := second.proc.Log()
	i := strings.Index(log, "write refused by the fence")
	if i < 0 {
		t.Fatalf("the stale leader logged no refused write:\n%s", log)
	}
	t.Logf("the stale leader: %s", strings.SplitN(log[i:], "\n", 2)[0])
	if err := etcdMatchesServices(t, e, etcd, ns); err != nil {
		t.Fatalf("after the stale leader's attempt: %v", err)
	}
	createClusterIPService(t, e, ns, "four")
	converged("records of four, by the leader that stayed")
	if v := metricValue(t, third.healthz, "kube2sky_leader"); v != 1 {
		t.Fatalf("%s kube2sky_leader %v, want 1", third.name, v)
	}
}

func signal(t *testing.T, k *electedKube2sky, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(k.proc.Pid(), sig); err != nil {
		t.Fatal(err)
	}
}
