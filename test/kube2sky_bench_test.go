//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skypod/skypod/test/harness"
)

// BenchmarkKube2sky is `make bench-kube2sky`: with 10,000 services (5,000
// per namespace) and their endpoints already in a real apiserver, it
// measures kube2sky's start to every record in etcd, the propagation of
// 200 new services to a correct answer through skydns, the etcd writes of a
// resync with no change, kube2sky's peak RSS, and the etcd writes of a
// restart with no change. Run it once (-benchtime 1x).
func BenchmarkKube2sky(b *testing.B) {
	services := 10000
	if n, err := strconv.Atoi(os.Getenv("BENCH_SERVICES")); err == nil {
		services = n
	}
	// The first sync grows with the count: allow it more than the tests' 30 s.
	defer func(d time.Duration) { kube2skyReadyTimeout = d }(kube2skyReadyTimeout)
	kube2skyReadyTimeout = 30*time.Second + time.Duration(services/1000)*time.Second
	cluster := harness.StartCluster(b)
	grantKube2sky(b, cluster)
	cfg := cluster.RestConfig(harness.AdminToken)
	cfg.QPS, cfg.Burst = 2000, 4000
	admin := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	start := time.Now()
	perNS := 5000
	for ns := 0; ns*perNS < services; ns++ {
		createNamespace(b, admin, fmt.Sprintf("bench-%d", ns))
	}
	parallel(b, services, func(i int) error {
		ns, name := fmt.Sprintf("bench-%d", i/perNS), fmt.Sprintf("svc-%d", i)
		if _, err := admin.CoreV1().Services(ns).Create(ctx, benchService(name), metav1.CreateOptions{}); err != nil {
			return err
		}
		_, err := admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Subsets: []v1.EndpointSubset{{
				Addresses: []v1.EndpointAddress{{IP: fmt.Sprintf("10.%d.%d.%d", 200+i>>16, i>>8&255, i&255)}},
				Ports:     []v1.EndpointPort{{Name: "http", Port: 8080, Protocol: v1.ProtocolTCP}},
			}},
		}, metav1.CreateOptions{})
		return err
	})
	b.Logf("created %d services and endpoints in %.1fs", services, time.Since(start).Seconds())

	b.ResetTimer()
	syncStart := time.Now()
	pod := startDNSPod(b, cluster, "--resync-period=15s", "--log-level=warn")
	syncSeconds := time.Since(syncStart).Seconds()
	keys := countKeys(b, pod, "/skydns/local/cluster/svc/")
	syncWrites := kube2skyWrites(b, pod)
	if keys < 2*services {
		b.Fatalf("%d keys in etcd after the first sync, want at least %d", keys, 2*services)
	}

	latencies := make([]float64, 0, 200)
	for i := 0; i < 200; i++ {
		name := fmt.Sprintf("new-%d", i)
		created := time.Now()
		svc, err := admin.CoreV1().Services("bench-0").Create(ctx, benchService(name), metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		qname := name + ".bench-0.svc.cluster.local."
		for {
			m, err := harness.Exchange(pod.skydns.Addr, "udp", qname, dns.TypeA)
			if err == nil && slices.Equal(harness.Answers(m), []string{svc.Spec.ClusterIP}) {
				break
			}
			if time.Since(created) > 30*time.Second {
				b.Fatalf("%s not answered within 30s", qname)
			}
			time.Sleep(time.Millisecond)
		}
		latencies = append(latencies, time.Since(created).Seconds()*1000)
	}
	slices.Sort(latencies)

	written := func() float64 { return kube2skyWrites(b, pod) }
	resyncs := func() float64 { return metricValue(b, pod.healthz, "kube2sky_last_resync_timestamp_seconds") }
	before, resyncBefore := written(), resyncs()
	harness.Eventually(b, 40*time.Second, "a periodic resync", func() error {
		if resyncs() == resyncBefore {
			return fmt.Errorf("no resync yet")
		}
		return nil
	})
	harness.Eventually(b, 20*time.Second, "the resync's queue drained", func() error {
		if v := metricValue(b, pod.healthz, "kube2sky_queue_depth"); v != 0 {
			return fmt.Errorf("queue depth %v", v)
		}
		return nil
	})
	noopWrites := written() - before
	rss := pod.kube2sky.PeakRSSMiB(b)

	// A restart with nothing changed: the new process's counters and etcd's
	// revision count its writes, from the start to the first full sync.
	stopKube2sky(b, pod)
	revision, _ := etcdState(b, pod)
	pod.startKube2sky(b)
	restartWrites := written()
	after, _ := etcdState(b, pod)

	b.ReportMetric(syncSeconds, "initial-sync-s")
	p50, p99 := percentile(latencies, 50), percentile(latencies, 99)
	b.ReportMetric(p50, "propagation-p50-ms")
	b.ReportMetric(p99, "propagation-p99-ms")
	b.ReportMetric(noopWrites, "noop-resync-writes")
	b.ReportMetric(rss, "kube2sky-peak-RSS-MiB")
	b.ReportMetric(restartWrites, "noop-restart-writes")
	b.ReportMetric(syncWrites, "initial-sync-writes")
	b.Logf("services %d; initial sync %.2fs (target < 20s), %d keys, %v writes; propagation p50 %.1f ms, p99 %.1f ms (target < 250 ms); "+
		"no-change resync writes %v (must be 0); kube2sky peak RSS %.0f MiB; "+
		"no-change restart writes %v, etcd revisions %d (must be 0)",
		services, syncSeconds, keys, syncWrites, p50, p99, noopWrites, rss,
		restartWrites, after-revision)
}

func benchService(name string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
}

// parallel runs f for 0..n-1 on 16 goroutines, failing on the first error.
func parallel(tb testing.TB, n int, f func(int) error) {
	tb.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
}

func countKeys(tb testing.TB, pod *dnsPod, prefix string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pod.etcd.Client().Get(ctx, prefix, clientv3WithPrefixCount()...)
	if err != nil {
		tb.Fatal(err)
	}
	return int(resp.Count)
}

func metricValue(tb testing.TB, base, name string) float64 {
	tb.Helper()
	v, err := tryMetric(base, name)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// tryMetric is metricValue for a goroutine or a process that may be gone:
// it returns the error.
func tryMetric(base, name string) (float64, error) {
	_, body, err := harness.HTTPGet(base + "/metrics")
	if err != nil {
		return 0, err
	}
	v, ok := sample(body, name)
	if !ok {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return strconv.ParseFloat(v, 64)
}

// sample is the value of the sample named name (labels included, as
// exposed: `x_total{reason="y"}`) in a /metrics body.
func sample(body, name string) (string, bool) {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, true
		}
	}
	return "", false
}

func clientv3WithPrefixCount() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCountOnly()}
}
