package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skypod/skypod/test/bench/benchrecords"
	"github.com/skypod/skypod/test/benchload"
	"github.com/skypod/skypod/test/harness"
)

// propagationResult is the churn phase: from a Service's create through
// the apiserver to each server's first correct answer, while other
// services' endpoints change; then how long each server kept answering
// with a recreated service's old ClusterIP.
type propagationResult struct {
	Services      int     // In the apiserver.
	Created       int     // Services timed.
	ChurnRate     float64 // Endpoints changes a second achieved (Endpoints and EndpointSlice each).
	ChurnErrors   int64
	P50, P99, Max map[string]float64 // Milliseconds, create to first correct answer.
	Timeouts      map[string]int
	// BehindP50 and BehindP99 are percentiles, over the services timed, of
	// each server's time less coredns-k8s's for the same create (ms): the
	// create's own time through the apiserver, common to all and most of
	// the tail, is out of them.
	BehindP50, BehindP99 map[string]float64
	// Freshness: each sample deletes a service and recreates it with a new
	// ClusterIP; StaleMax is the longest a server then still gave the old
	// address, after the new service existed (ms); NewP50 its median time
	// from the recreate to the new answer.
	FreshSamples   int
	StaleMax       map[string]float64
	NewP50, NewMax map[string]float64
}

// propagationServers are the servers whose propagation is timed.
var propagationServers = []string{"skydns", "coredns-k8s", "coredns-etcd", tmpfsPodServer}

// behindOf is the server the others' lag is measured from.
const behindOf = "coredns-k8s"

// answerBound is how long a server may take to answer a change.
const answerBound = 30 * time.Second

// measurePropagation creates c.propServices services one at a time in a
// namespace of their own while c.churnPerSecond other services' endpoints
// change each second, timing each server's first correct answer.
func (b *bench) measurePropagation(cluster *harness.Cluster, l benchrecords.Layout, servers []*server) *propagationResult {
	dns := slices.DeleteFunc(slices.Clone(servers), func(d *server) bool { return d.name == "fixed" })
	// A cache answers a new name with the NXDOMAIN the polls before its
	// create put there, for as long as the cache keeps it (up to 30 s):
	// the caches are timed by freshness, not here, and skydns's variants
	// differ from it in nothing a create goes through.
	timed := slices.DeleteFunc(slices.Clone(dns), func(d *server) bool { return !slices.Contains(propagationServers, d.name) })
	admin := fastClient(b, cluster)
	res := &propagationResult{Services: l.Services, Timeouts: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	var changes, errs atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { churn(ctx, admin, l, b.c.churnPerSecond, &changes, &errs) })
	start := time.Now()
	benchload.Namespace(b.s, admin, "prop")
	lat, behind := map[string][]float64{}, map[string][]float64{}
	for i := range b.c.propServices {
		name := fmt.Sprintf("prop-%d", i)
		created := time.Now()
		svc, err := admin.CoreV1().Services("prop").Create(context.Background(), plainService(name, ""), metav1.CreateOptions{})
		if err != nil {
			b.s.Fatal(err)
		}
		took := firstAnswers(timed, name+".prop.svc.cluster.local.", svc.Spec.ClusterIP, created)
		for name, ms := range took {
			lat[name] = append(lat[name], ms)
			if ms >= float64(answerBound.Milliseconds()) {
				res.Timeouts[name]++
			}
			if ref, ok := took[behindOf]; ok && name != behindOf {
				behind[name] = append(behind[name], ms-ref)
			}
		}
		if i%20 == 19 {
			b.s.Logf(">> propagation: %d of %d services", i+1, b.c.propServices)
		}
	}
	b.freshness(admin, l, dns, res)
	stop()
	wg.Wait()
	res.Created, res.ChurnErrors = b.c.propServices, errs.Load()
	res.ChurnRate = float64(changes.Load()) / time.Since(start).Seconds()
	res.P50, res.P99, res.Max = percentiles(lat, 50), percentiles(lat, 99), percentiles(lat, 100)
	res.BehindP50, res.BehindP99 = percentiles(behind, 50), percentiles(behind, 99)
	return res
}

// fastClient is an administrator's client without client-go's default
// limit of 5 requests a second, which the churn alone exceeds.
func fastClient(b *bench, cluster *harness.Cluster) kubernetes.Interface {
	cfg := cluster.RestConfig(harness.AdminToken)
	cfg.QPS, cfg.Burst = 1000, 1000
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.s.Fatal(err)
	}
	return c
}

func percentiles(ms map[string][]float64, p float64) map[string]float64 {
	out := map[string]float64{}
	for name, v := range ms {
		out[name] = percentile(slices.Sorted(slices.Values(v)), p)
	}
	return out
}

func plainService(name, clusterIP string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.ServiceSpec{ClusterIP: clusterIP, Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
}

// firstAnswers polls every server at once for qname until each answers
// want, and returns each's time since created, in milliseconds (the bound
// when it never did).
func firstAnswers(servers []*server, qname, want string, created time.Time) map[string]float64 {
	out := map[string]float64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range servers {
		wg.Go(func() {
			took := pollUntil(d.addr, qname, created, func(ips []string) bool { return slices.Equal(ips, []string{want}) })
			mu.Lock()
			out[d.name] = took.Seconds() * 1000
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// pollUntil asks addr for qname's A every millisecond until done holds
// of the answer, and returns the time since since (answerBound at most).
func pollUntil(addr, qname string, since time.Time, done func(ips []string) bool) time.Duration {
	for time.Since(since) < answerBound {
		if done(lookupA(addr, qname)) {
			return time.Since(since)
		}
		time.Sleep(time.Millisecond)
	}
	return answerBound
}

// lookupA is the A answers for qname, nil on any failure.
func lookupA(addr, qname string) []string {
	m, err := harness.Exchange(addr, "udp", qname, dns.TypeA)
	if err != nil || m.Rcode != dns.RcodeSuccess {
		return nil
	}
	return harness.Answers(m)
}

// churn changes rate headless services' endpoints a second, through the
// apiserver (Endpoints and EndpointSlice: there are no controllers to
// mirror one into the other), until ctx ends.
func churn(ctx context.Context, admin kubernetes.Interface, l benchrecords.Layout, rate int, changes, errs *atomic.Int64) {
	if rate < 1 {
		return
	}
	headless := max(1, l.Services*l.HeadlessPercent/100)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Headless services are those whose index mod 100 is below HeadlessPercent.
		k := n % headless
		i := k/l.HeadlessPercent*100 + k%l.HeadlessPercent
		wg.Go(func() {
			if changeEndpoints(ctx, admin, l, i, n) != nil {
				errs.Add(1)
				return
			}
			changes.Add(1)
		})
	}
}

// changeEndpoints gives headless service i's last endpoint address a new
// value (the n-th change), in its Endpoints and its EndpointSlice.
func changeEndpoints(ctx context.Context, admin kubernetes.Interface, l benchrecords.Layout, i, n int) error {
	_, eps := benchload.Objects(l, i)
	addrs := eps.Subsets[0].Addresses
	addrs[len(addrs)-1].IP = fmt.Sprintf("172.31.%d.%d", n>>8&255, n&255)
	if _, err := admin.CoreV1().Endpoints(eps.Namespace).Update(ctx, eps, metav1.UpdateOptions{}); err != nil {
		return err
	}
	_, err := admin.DiscoveryV1().EndpointSlices(eps.Namespace).Update(ctx, benchload.EndpointSlice(eps), metav1.UpdateOptions{})
	return err
}

// freshness deletes c.freshSamples ClusterIP services and recreates each
// at once with a new ClusterIP (a ClusterIP cannot be changed in place),
// each server having answered the old one just before, and times how
// long each server goes on giving the old address after the new service
// exists, and until it gives the new one.
func (b *bench) freshness(admin kubernetes.Interface, l benchrecords.Layout, servers []*server, res *propagationResult) {
	stale, fresh := map[string][]float64{}, map[string][]float64{}
	for j := range b.c.freshSamples {
		i := (20 + 100*j) % l.Services // Bucket 20 onwards: ClusterIP services.
		svc, _ := benchload.Objects(l, i)
		qname := svc.Name + "." + svc.Namespace + ".svc.cluster.local."
		for _, d := range servers {
			lookupA(d.addr, qname) // Now in every cache.
		}
		ctx := context.Background()
		if err := admin.CoreV1().Services(svc.Namespace).Delete(ctx, svc.Name, metav1.DeleteOptions{}); err != nil {
			b.s.Fatal(err)
		}
		newIP := fmt.Sprintf("10.15.%d.%d", j>>8&255, j&255+1)
		if _, err := admin.CoreV1().Services(svc.Namespace).Create(ctx, plainService(svc.Name, newIP), metav1.CreateOptions{}); err != nil {
			b.s.Fatal(err)
		}
		created := time.Now()
		for name, t := range staleTimes(servers, qname, svc.Spec.ClusterIP, newIP, created) {
			stale[name], fresh[name] = append(stale[name], t[0]), append(fresh[name], t[1])
		}
	}
	res.FreshSamples = b.c.freshSamples
	res.StaleMax, res.NewP50, res.NewMax = percentiles(stale, 100), percentiles(fresh, 50), percentiles(fresh, 100)
}

// staleTimes polls every server for qname until it answers newIP, and
// returns for each the last time it answered oldIP and the time it first
// answered newIP, both in milliseconds since created.
func staleTimes(servers []*server, qname, oldIP, newIP string, created time.Time) map[string][2]float64 {
	out := map[string][2]float64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range servers {
		wg.Go(func() {
			var lastOld time.Duration
			took := pollUntil(d.addr, qname, created, func(ips []string) bool {
				if slices.Contains(ips, oldIP) {
					lastOld = time.Since(created)
				}
				return slices.Equal(ips, []string{newIP})
			})
			mu.Lock()
			out[d.name] = [2]float64{lastOld.Seconds() * 1000, took.Seconds() * 1000}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
