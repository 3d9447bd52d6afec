//go:build integration

package test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skypod/skypod/test/harness"
)

// BenchmarkHAPropagation is `make bench-ha`: the propagation of a new
// service, from its create to a correct answer through every skydns, in
// the HA shape (two kube2skys electing a leader, three skydns) on a
// three-member etcd against the same shape on a single member, in one
// run: both watch the one apiserver, so each service is created once and
// timed through both at the same moment, under the same load. Run it once
// (-benchtime 1x); BENCH_SERVICES sets the count (200).
func BenchmarkHAPropagation(b *testing.B) {
	services := 200
	if n, err := strconv.Atoi(os.Getenv("BENCH_SERVICES")); err == nil {
		services = n
	}
	s := newFaultSuite(b) // The apiserver and its administrator.
	cluster, admin := s.cluster, s.admin
	allowLease(b, admin, "kube2sky-single")
	shapes := []struct {
		name  string
		shape *haShape
	}{
		{"three-members", startHAShape(b, cluster, harness.StartEtcdCluster(b, 3, nil), 2, 3)},
		// A Lease of its own: the two shapes' kube2skys do not compete.
		{"single-member", startHAShape(b, cluster, []*harness.Etcd{harness.StartEtcd(b)}, 2, 3, "--leader-elect-resource-name=kube2sky-single")},
	}
	ns := "bench-ha"
	createNamespace(b, admin, ns)
	latencies := make([][]float64, len(shapes)) // Milliseconds.

	b.ResetTimer()
	for i := range services {
		name := fmt.Sprintf("prop-%d", i)
		created := time.Now()
		svc, err := admin.CoreV1().Services(ns).Create(context.Background(), benchService(name), metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		errs := make([]error, len(shapes))
		var wg sync.WaitGroup
		for j, s := range shapes {
			wg.Go(func() {
				took, err := firstAnswers(s.shape.addrs(), name+"."+ns+".svc.cluster.local.", svc.Spec.ClusterIP, created, 30*time.Second)
				latencies[j] = append(latencies[j], took.Seconds()*1000)
				errs[j] = err
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()

	line := fmt.Sprintf("propagation of %d services, create to a correct answer through all three skydns:", services)
	for j, s := range shapes {
		slices.Sort(latencies[j])
		p50, p99 := percentile(latencies[j], 50), percentile(latencies[j], 99)
		b.ReportMetric(p50, s.name+"-p50-ms")
		b.ReportMetric(p99, s.name+"-p99-ms")
		line += fmt.Sprintf(" %s p50 %.1f ms, p99 %.1f ms, max %.1f ms;", s.name, p50, p99, latencies[j][len(latencies[j])-1])
	}
	b.Log(line)
}

// allowLease lets kube2sky hold the Lease name too: the manifest's Role
// names kube2sky's alone.
func allowLease(b *testing.B, admin kubernetes.Interface, name string) {
	ctx, roles := context.Background(), admin.RbacV1().Roles("kube-system")
	role, err := roles.Get(ctx, "kube2sky-leader-election", metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	role.Rules[0].ResourceNames = append(role.Rules[0].ResourceNames, name)
	if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
}

// percentile is the p-th percentile of sorted values, by rank.
func percentile(sorted []float64, p int) float64 { return sorted[len(sorted)*p/100] }
