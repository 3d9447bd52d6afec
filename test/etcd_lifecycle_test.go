//go:build integration

package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skypod/skypod/internal/etcdclient"
	"github.com/skypod/skypod/test/benchload"
	"github.com/skypod/skypod/test/harness"
)

// etcd's lifecycle (issue #10): a full etcd is reported and recovered from
// without a restart, and compaction keeps the database flat under churn
// while skydns's watch carries on. Both share one API server; each has its
// own etcd for the pod.
func TestEtcdLifecycle(t *testing.T) {
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	t.Run("NOSPACE reported and cleared", func(t *testing.T) { testNoSpace(t, cluster) })
	t.Run("compaction keeps the database flat under churn", func(t *testing.T) { testCompactionChurn(t, cluster) })
}

func testNoSpace(t *testing.T, cluster *harness.Cluster) {
	// 4 MiB: a few junk values fill it, the pod's own records do not.
	etcd := harness.StartEtcd(t, "--quota-backend-bytes=4194304")
	pod := startDNSPodOn(t, cluster, etcd)
	admin, ns := cluster.Admin, "nospace"
	createNamespace(t, admin, ns)
	suffix := ns + ".svc.cluster.local."
	before := createService(t, admin, ns, "before")
	pod.expect(t, "NOERROR", []string{"A " + before}, "before."+suffix, "A")

	client := etcd.Client()
	fillEtcd(t, client)
	after := createService(t, admin, ns, "after")
	waitMetric(t, pod.healthz, "kube2sky_etcd_nospace", 1)
	waitMetric(t, pod.skydns.Metrics, "skydns_etcd_nospace", 1)
	// Several refused writes of "after" (its retries), still one line.
	harness.Eventually(t, 30*time.Second, "kube2sky retrying the refused write", func() error {
		if n := metricValue(t, pod.healthz, "kube2sky_etcd_errors_total"); n < 3 {
			return fmt.Errorf("kube2sky_etcd_errors_total = %v", n)
		}
		return nil
	})
	wantLogLines(t, pod, "raised its NOSPACE alarm", 1)
	wantBodies(t, "NOSPACE", pod.healthz+"/readiness", pod.skydns.Metrics+"/ready")
	if up := metricValue(t, pod.healthz, "kube2sky_etcd_up"); up != 1 {
		t.Errorf("kube2sky_etcd_up = %v at NOSPACE: etcd answers, only refusing writes", up)
	}
	pod.expect(t, "NOERROR", []string{"A " + before}, "before."+suffix, "A")

	freeSpace(t, etcd, client)
	waitMetric(t, pod.healthz, "kube2sky_etcd_nospace", 0)
	waitMetric(t, pod.skydns.Metrics, "skydns_etcd_nospace", 0)
	pod.expect(t, "NOERROR", []string{"A " + after}, "after."+suffix, "A")
	pod.expect(t, "NOERROR", []string{"A " + before}, "before."+suffix, "A")
	wantLogLines(t, pod, "NOSPACE alarm has cleared", 1)
	wantBodies(t, "ok\n", pod.healthz+"/readiness", pod.skydns.Metrics+"/ready")
}

// fillEtcd puts junk under /junk/ until etcd refuses a write for space.
func fillEtcd(t *testing.T, c *clientv3.Client) {
	t.Helper()
	junk := strings.Repeat("x", 512<<10)
	for i := range 64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Put(ctx, fmt.Sprintf("/junk/%d", i), junk)
		cancel()
		if etcdclient.IsNoSpace(err) {
			return
		}
		if err != nil {
			t.Fatalf("filling etcd: %v", err)
		}
	}
	t.Fatal("etcd took 32 MiB of junk under a 4 MiB quota")
}

// freeSpace is the operator's recovery: delete the junk, compact its
// history away, defragment, and disarm the alarm.
func freeSpace(t *testing.T, etcd *harness.Etcd, c *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	del := must(c.Delete(ctx, "/junk/", clientv3.WithPrefix()))(t)
	must(c.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()))(t)
	must(c.Defragment(ctx, etcd.URL))(t)
	for _, a := range must(c.AlarmList(ctx))(t).Alarms {
		if a.Alarm == pb.AlarmType_NOSPACE {
			must(c.AlarmDisarm(ctx, (*clientv3.AlarmMember)(a)))(t)
		}
	}
}

func createService(t *testing.T, admin kubernetes.Interface, ns, name string) string {
	t.Helper()
	svc := must(admin.CoreV1().Services(ns).Create(context.Background(), &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}, metav1.CreateOptions{}))(t)
	return svc.Spec.ClusterIP
}

func waitMetric(t *testing.T, base, name string, want float64) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, fmt.Sprintf("%s = %v", name, want), func() error {
		if got := metricValue(t, base, name); got != want {
			return fmt.Errorf("%s = %v", name, got)
		}
		return nil
	})
}

// wantLogLines checks kube2sky and skydns each logged sub exactly n times.
func wantLogLines(t *testing.T, pod *dnsPod, sub string, n int) {
	t.Helper()
	for _, p := range []*harness.Process{pod.kube2sky, pod.skydns.Process} {
		if got := strings.Count(p.Log(), sub); got != n {
			t.Errorf("%s logged %q %d times, want %d", p.Name, sub, got, n)
		}
	}
}

// wantBodies checks that each URL answers 200 with sub in its body.
func wantBodies(t *testing.T, sub string, urls ...string) {
	t.Helper()
	for _, url := range urls {
		if err := wantBody(url, sub); err != nil {
			t.Error(err)
		}
	}
}

// churnServices is how many headless services the churn test updates, each
// from its own goroutine.
const churnServices = 5

// Endpoints churn through the API server and kube2sky, with etcd compacted
// after every round as its periodic compactor would (etcd's revision
// compactor acts only every five minutes, too slow for a test): the
// database in use stays flat (within flatSlack) while revisions grow tenfold, and skydns's
// watch follows every round to the latest endpoints.
func testCompactionChurn(t *testing.T, cluster *harness.Cluster) {
	etcd := harness.StartEtcd(t)
	pod := startDNSPodOn(t, cluster, etcd)
	ns := "churn"
	createNamespace(t, cluster.Admin, ns)
	// Unthrottled: client-go's default 5 requests a second would make
	// thousands of updates take many minutes.
	cfg := cluster.RestConfig(harness.AdminToken)
	cfg.QPS = -1
	admin := must(kubernetes.NewForConfig(cfg))(t)
	eps := make([]*v1.Endpoints, churnServices)
	for i := range eps {
		eps[i] = createHeadless(t, admin, ns, fmt.Sprintf("churn-%d", i))
	}
	client := etcd.Client()
	var first *clientv3.StatusResponse
	for round := 1; ; round++ {
		benchload.Parallel(t, context.Background(), 16, churnServices, func(i int) error { return churnEndpoints(admin, ns, eps, i, round) })
		for i, e := range eps {
			pod.expect(t, "NOERROR", []string{"A " + e.Subsets[0].Addresses[0].IP}, fmt.Sprintf("churn-%d.%s.svc.cluster.local.", i, ns), "A")
		}
		st := compactNow(t, etcd, client)
		t.Logf("round %d: revision %d, db %d bytes, in use %d, skydns lists %s", round, st.Header.Revision,
			st.DbSize, st.DbSizeInUse, pod.skydns.metric(t, "skydns_etcd_lists_total"))
		if first == nil {
			first = st
			continue
		}
		if st.DbSizeInUse > first.DbSizeInUse+flatSlack {
			t.Fatalf("round %d: %d bytes in use, more than %d over the %d after the first round", round, st.DbSizeInUse, flatSlack, first.DbSizeInUse)
		}
		if st.Header.Revision > 10*first.Header.Revision {
			return
		}
		if round == 100 {
			t.Fatalf("100 rounds reached only revision %d, from %d after the first", st.Header.Revision, first.Header.Revision)
		}
	}
}

// flatSlack is how far the database in use may drift above the first
// round's: bbolt's free pages move between rounds by tens of kilobytes (one
// run saw 28 to 160 KiB), while without compaction each round's ~470
// revisions add about 420 KiB (0.9 KiB a revision, docs/reliability.md),
// 4 MiB by the tenfold revision where the test ends.
const flatSlack = 256 << 10

// churnUpdates is how many times each service's endpoints change a round.
const churnUpdates = 100

// churnEndpoints moves service i's one endpoint churnUpdates times; eps[i]
// ends as the API server last stored it.
func churnEndpoints(admin kubernetes.Interface, ns string, eps []*v1.Endpoints, i, round int) error {
	ctx := context.Background()
	for u := range churnUpdates {
		e := eps[i].DeepCopy()
		e.Subsets[0].Addresses[0].IP = fmt.Sprintf("10.%d.%d.%d", 100+i, round%250, u+1) // New each update.
		updated, err := admin.CoreV1().Endpoints(ns).Update(ctx, e, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		eps[i] = updated
	}
	return nil
}

func createHeadless(t *testing.T, admin kubernetes.Interface, ns, name string) *v1.Endpoints {
	t.Helper()
	ctx := context.Background()
	must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}, metav1.CreateOptions{}))(t)
	return must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subsets: []v1.EndpointSubset{{
			Addresses: []v1.EndpointAddress{{IP: "10.99.0.1"}},
			Ports:     []v1.EndpointPort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		}},
	}, metav1.CreateOptions{}))(t)
}

// compactNow compacts etcd's history up to its current revision and
// returns its status once the compaction has freed the pages.
func compactNow(t *testing.T, etcd *harness.Etcd, c *clientv3.Client) *clientv3.StatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev := must(c.Status(ctx, etcd.URL))(t).Header.Revision
	must(c.Compact(ctx, rev, clientv3.WithCompactPhysical()))(t)
	return must(c.Status(ctx, etcd.URL))(t)
}
