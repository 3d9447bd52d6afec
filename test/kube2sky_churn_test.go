//go:build integration

package test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/test/harness"
)

// With --use-endpointslices kube2sky reads discovery.k8s.io/v1, and an etcd
// restart in the middle of churn loses no record.
func TestKube2skyEndpointSlicesAndEtcdRestart(t *testing.T) {
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	pod := startDNSPod(t, cluster, "--use-endpointslices")
	admin := cluster.Admin
	ctx := context.Background()
	ns := "slices"
	createNamespace(t, admin, ns)
	suffix := ns + ".svc.cluster.local."

	t.Run("EndpointSlices", func(t *testing.T) {
		must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Name: "pg", Port: 5432, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))(t)
		ready, notReady := true, false
		hostname, portName, portNum, proto := "db-0", "pg", int32(5432), v1.ProtocolTCP
		must(admin.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "db-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.5.1"}, Hostname: &hostname, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
				{Addresses: []string{"10.244.5.2"}},
				{Addresses: []string{"10.244.5.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
			},
			Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &portNum, Protocol: &proto}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A 10.244.5.1", "A 10.244.5.2"}, "db."+suffix, "A")
		pod.expect(t, "NOERROR", []string{"A 10.244.5.1"}, "db-0.db."+suffix, "A")
		_, answers := harness.Dig(t, pod.skydns.Addr, "_pg._tcp.db."+suffix, "SRV")
		if got := rdata(answers); len(got) != 2 || !slices.Contains(got, "SRV 10 50 5432 db-0.db."+suffix) {
			t.Errorf("SRV per ready endpoint, to its own name: %q", got)
		}
		if err := admin.DiscoveryV1().EndpointSlices(ns).Delete(ctx, "db-abc", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		pod.expect(t, "NXDOMAIN", nil, "db."+suffix, "A")
	})

	t.Run("etcd restarted during churn", func(t *testing.T) {
		create := func(i int) string {
			svc := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%d", i)},
				Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
			}, metav1.CreateOptions{}))(t)
			return svc.Spec.ClusterIP
		}
		ips := map[int]string{0: create(0)}
		// churn-0 is deleted during the outage: it must be in etcd first, or
		// its NXDOMAIN at the end would prove nothing.
		pod.expect(t, "NOERROR", []string{"A " + ips[0]}, "churn-0."+suffix, "A")
		for i := 1; i < 10; i++ {
			ips[i] = create(i)
		}
		pod.etcd.Stop()
		for i := 10; i < 20; i++ {
			ips[i] = create(i)
		}
		if err := admin.CoreV1().Services(ns).Delete(ctx, "churn-0", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// A write timing out tells kube2sky, after its etcd timeout.
		pod.waitEtcdOutageSeen(t, 15*time.Second)
		pod.etcd.Start()
		for i := 1; i < 20; i++ {
			pod.expect(t, "NOERROR", []string{"A " + ips[i]}, fmt.Sprintf("churn-%d.%s", i, suffix), "A")
		}
		pod.expect(t, "NXDOMAIN", nil, "churn-0."+suffix, "A")
		if code, _, _ := harness.HTTPGet(pod.healthz + "/readiness"); code != 200 {
			t.Errorf("/readiness = %d after etcd returned, want 200", code)
		}
	})

	t.Run("idle kube2sky notices an etcd outage", func(t *testing.T) {
		pod.etcd.Stop()
		pod.waitEtcdOutageSeen(t, 10*time.Second) // The probe's, with no write pending.
		pod.etcd.Start()
		harness.Eventually(t, 15*time.Second, "ready again", func() error {
			if code, _, _ := harness.HTTPGet(pod.healthz + "/readiness"); code != 200 {
				return fmt.Errorf("/readiness = %d", code)
			}
			return nil
		})
	})
}

// waitEtcdOutageSeen waits until kube2sky shows that etcd is gone, on the
// kube2sky_etcd_up metric and in /readiness's body, which stays 200 (an
// etcd outage must not take a pod that answers out of its Service): how
// soon depends on what tells it (a write timing out or the idle probe) and
// on the machine's load.
func (p *dnsPod) waitEtcdOutageSeen(t *testing.T, within time.Duration) {
	t.Helper()
	harness.Eventually(t, within, "kube2sky_etcd_up 0, and /readiness 200 saying etcd is unreachable", func() error {
		if code, body, err := harness.HTTPGet(p.healthz + "/metrics"); code != 200 || !containsLine(body, "kube2sky_etcd_up 0") {
			return fmt.Errorf("metrics %d %v: no kube2sky_etcd_up 0", code, err)
		}
		if code, body, err := harness.HTTPGet(p.healthz + "/readiness"); code != 200 || !strings.Contains(body, "etcd unreachable") {
			return fmt.Errorf("/readiness = %d %q %v", code, body, err)
		}
		return nil
	})
}
