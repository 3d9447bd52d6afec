//go:build integration

package test

import (
	"context"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/skypod/skypod/test/harness"
)

// A kube2sky restart diffs against what etcd holds: with nothing changed it
// writes nothing (etcd's revision does not move, so no skydns sees a watch
// event), and after a port was renamed and a service deleted while it was
// down it writes exactly those changes.
func TestKube2skyRestartWritesOnlyChanges(t *testing.T) {
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	pod := startDNSPod(t, cluster)
	admin, ctx := cluster.Admin, context.Background()
	const ns = "restart"
	createNamespace(t, admin, ns)
	suffix := ns + ".svc.cluster.local."
	web := createRestartObjects(t, pod, admin, ns)

	// Nothing changed: no write.
	stopKube2sky(t, pod)
	rev, before := etcdState(t, pod)
	pod.startKube2sky(t) // Returns once /readiness says the first full sync is complete.
	if after, _ := etcdState(t, pod); after != rev {
		t.Errorf("no-change restart: etcd's revision moved from %d to %d: %v", rev, after, etcdChanges(t, pod, rev))
	}
	if n := kube2skyWrites(t, pod); n != 0 {
		t.Errorf("no-change restart: kube2sky_records_written_total + kube2sky_records_deleted_total = %v", n)
	}

	// A port renamed and a service deleted while kube2sky is down: exactly
	// those keys.
	stopKube2sky(t, pod)
	web.Spec.Ports[0].Name = "https"
	must(admin.CoreV1().Services(ns).Update(ctx, web, metav1.UpdateOptions{}))(t)
	if err := admin.CoreV1().Services(ns).Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for k, v := range before {
		switch {
		case strings.Contains(k, "/svc/"+ns+"/web/_tcp/_http/"):
			want["delete "+k] = true
			want["put "+strings.Replace(k, "/_tcp/_http/", "/_tcp/_https/", 1)] = true
		case strings.Contains(k, "/svc/"+ns+"/db/"), strings.HasPrefix(k, "/skydns/arpa/") && strings.HasSuffix(recordHost(t, v), ".db."+suffix):
			want["delete "+k] = true
		}
	}
	if len(want) != 8 { // web's SRV, put and deleted; db's two A, two SRV and two PTRs.
		t.Fatalf("the keys the change should touch: %v; etcd held %v", want, before)
	}
	pod.startKube2sky(t)
	if got := etcdChanges(t, pod, rev); !maps.Equal(got, want) {
		t.Errorf("the restart after a change wrote %v, want exactly %v", got, want)
	}
	if n := kube2skyWrites(t, pod); n != float64(len(want)) {
		t.Errorf("kube2sky counted %v writes, want %d", n, len(want))
	}
	pod.expect(t, "NOERROR", []string{"SRV 10 100 443 web." + suffix}, "_https._tcp.web."+suffix, "SRV")
	pod.expect(t, "NXDOMAIN", nil, "_http._tcp.web."+suffix, "SRV")
	pod.expect(t, "NXDOMAIN", nil, "db."+suffix, "A")
}

// createRestartObjects makes one of each record owner in ns (a ClusterIP
// service with named ports, a headless one with endpoints with and without
// a hostname, an ExternalName service, a pod with an IP), waits until skydns
// answers for each, and returns the ClusterIP service.
func createRestartObjects(t *testing.T, pod *dnsPod, admin kubernetes.Interface, ns string) *v1.Service {
	t.Helper()
	ctx, suffix := context.Background(), ns+".svc.cluster.local."
	web := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{
			{Name: "http", Port: 443, Protocol: v1.ProtocolTCP}, {Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}}},
	}, metav1.CreateOptions{}))(t)
	must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone},
	}, metav1.CreateOptions{}))(t)
	must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Subsets: []v1.EndpointSubset{{
			Addresses: []v1.EndpointAddress{{IP: "10.244.7.1", Hostname: "db-0"}, {IP: "10.244.7.2"}},
			Ports:     []v1.EndpointPort{{Name: "pg", Port: 5432, Protocol: v1.ProtocolTCP}},
		}},
	}, metav1.CreateOptions{}))(t)
	must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext"},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "www.example.com"},
	}, metav1.CreateOptions{}))(t)
	p := must(admin.CoreV1().Pods(ns).Create(ctx, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "none"}}},
	}, metav1.CreateOptions{}))(t)
	patch := []byte(`{"status":{"podIP":"10.244.7.9","podIPs":[{"ip":"10.244.7.9"}]}}`)
	must(admin.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"))(t)

	pod.expect(t, "NOERROR", []string{"SRV 10 100 443 web." + suffix}, "_http._tcp.web."+suffix, "SRV")
	pod.expect(t, "NOERROR", []string{"A 10.244.7.1", "A 10.244.7.2"}, "db."+suffix, "A")
	pod.expect(t, "NOERROR", []string{"CNAME www.example.com."}, "ext."+suffix, "CNAME")
	pod.expect(t, "NOERROR", []string{"A 10.244.7.9"}, "10-244-7-9."+ns+".pod.cluster.local", "A")
	return web
}

// stopKube2sky stops kube2sky with SIGTERM, as a rolling update does.
func stopKube2sky(t testing.TB, pod *dnsPod) {
	t.Helper()
	if err := pod.kube2sky.Stop(20 * time.Second); err != nil {
		t.Fatalf("kube2sky on SIGTERM: %v", err)
	}
}

// etcdState is etcd's revision and everything under /skydns.
func etcdState(t testing.TB, pod *dnsPod) (int64, map[string]string) {
	t.Helper()
	resp, err := pod.etcd.Client().Get(context.Background(), "/skydns/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return resp.Header.Revision, out
}

// etcdChanges are the puts and deletes under /skydns after revision rev, up
// to the current one, as "put <key>" and "delete <key>".
func etcdChanges(t *testing.T, pod *dnsPod, rev int64) map[string]bool {
	t.Helper()
	now, _ := etcdState(t, pod)
	out := map[string]bool{}
	if now == rev {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for resp := range pod.etcd.Client().Watch(ctx, "/skydns/", clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Events {
			out[strings.ToLower(ev.Type.String())+" "+string(ev.Kv.Key)] = true
		}
		// A response holds whole revisions: one transaction's events together.
		if n := len(resp.Events); n > 0 && resp.Events[n-1].Kv.ModRevision >= now {
			return out
		}
	}
	t.Fatalf("watch from revision %d ended before revision %d: %v", rev+1, now, ctx.Err())
	return nil
}

// kube2skyWrites is what the running kube2sky has put and deleted.
func kube2skyWrites(t testing.TB, pod *dnsPod) float64 {
	t.Helper()
	return metricValue(t, pod.healthz, "kube2sky_records_written_total") + metricValue(t, pod.healthz, "kube2sky_records_deleted_total")
}

// recordHost is the host of a SkyDNS record value.
func recordHost(t *testing.T, value string) string {
	t.Helper()
	var r struct{ Host string }
	if err := json.Unmarshal([]byte(value), &r); err != nil {
		t.Fatalf("record %q: %v", value, err)
	}
	return r.Host
}
