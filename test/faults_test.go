//go:build integration

package test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/test/benchload"
	"github.com/skypod/skypod/test/harness"
)

// The fault suite of issue #10. Each scenario runs the DNS pod's own etcd,
// kube2sky and skydns against the one shared kube-apiserver, in a
// namespace of its own; injects a fault while a goroutine churns services
// and endpoints and another asks skydns for names that never change; ends
// the fault; and then requires etcd's /skydns to hold exactly what the API
// objects call for (built with kube2sky's own Namer) and every service in
// the cluster to resolve. Each logs one FAULT-REPORT line, the figures of
// docs/reliability.md ("Faults").
const (
	// faultHold is how long a fault lasts, churn running, unless the
	// scenario says otherwise.
	faultHold = 5 * time.Second
	// etcdDownFor is the outage of etcd-down-30s, the 30 s.
	etcdDownFor = 30 * time.Second
	// convergeWithin bounds the time from the end of a fault to etcd
	// matching the API objects; the target is 5 s, and the measured figure
	// is reported.
	convergeWithin = 60 * time.Second
	queryEvery     = 50 * time.Millisecond
	churnEvery     = 150 * time.Millisecond
	// churnLead is how long churn runs before the fault.
	churnLead = time.Second
	// afterOps churn operations run right after each recovery, so every
	// scenario also shows changes made after the fault getting through.
	afterOps = 6
	// noSpaceQuota is etcd-nospace's backend quota: a few junk values fill it.
	noSpaceQuota = 16 << 20
	junkValue    = 1 << 20
)

// faultScenario is one fault: inject starts it, during (if set) runs while
// it lasts, and recover ends it and returns the instant it ended.
type faultScenario struct {
	name string
	hold time.Duration
	// etcdFlags are extra flags of the pod's etcd.
	etcdFlags []string
	// skydnsDown: skydns itself is restarted in the fault, so its answers
	// during it are reported, not required; NXDOMAIN is still a failure.
	skydnsDown bool
	inject     func(*faultRun)
	during     func(*faultRun, context.Context)
	recover    func(*faultRun) time.Time
}

// faultScenarios in the order they run: apiserver-restart restarts the
// shared apiserver, so it is last.
func faultScenarios() []faultScenario {
	return []faultScenario{
		{name: "etcd-sigkill", hold: faultHold,
			inject: func(r *faultRun) { r.pod.etcd.Stop() }, recover: restartEtcd},
		{name: "etcd-down-30s", hold: etcdDownFor,
			inject: func(r *faultRun) { r.pod.etcd.Pause() },
			recover: func(r *faultRun) time.Time {
				r.pod.etcd.Resume()
				return time.Now()
			}},
		{name: "etcd-compacted", hold: faultHold, during: (*faultRun).compactEverySecond,
			recover: func(*faultRun) time.Time { return time.Now() }},
		{name: "kube2sky-sigkill", hold: faultHold, inject: (*faultRun).killKube2skyMidSync,
			during: (*faultRun).recreateVictims, recover: restartKube2sky},
		{name: "skydns-restart-etcd-down", hold: faultHold, skydnsDown: true,
			inject: (*faultRun).restartSkydnsWithoutEtcd, recover: restartEtcd},
		{name: "etcd-nospace", hold: faultHold, etcdFlags: []string{fmt.Sprintf("--quota-backend-bytes=%d", noSpaceQuota)},
			inject: (*faultRun).fillEtcd, recover: (*faultRun).clearNoSpace},
		{name: "apiserver-restart", hold: time.Second,
			inject: func(r *faultRun) { r.cluster.KillAPIServer() },
			recover: func(r *faultRun) time.Time {
				r.cluster.StartAPIServer() // Returns once /readyz says ok.
				return time.Now()
			}},
	}
}

func restartEtcd(r *faultRun) time.Time {
	r.pod.etcd.Start() // Returns once etcd serves.
	return time.Now()
}

func restartKube2sky(r *faultRun) time.Time {
	at := time.Now()
	r.pod.startKube2sky(r.t) // Its first full sync is part of converging.
	return at
}

// faultSuite is what the scenarios share: the cluster, and the endpoint
// addresses handed out, so that no two endpoints in it share an IP (a PTR
// two services call for has one holder, which the comparison would have to
// guess).
type faultSuite struct {
	cluster *harness.Cluster
	admin   kubernetes.Interface
	namer   kube2sky.Namer
	nextIP  atomic.Int64
}

func (s *faultSuite) endpointIP() string {
	n := s.nextIP.Add(1)
	return fmt.Sprintf("10.250.%d.%d", n/250, n%250+1)
}

// newFaultSuite starts the kube-apiserver the scenarios share and grants
// kube2sky its rights.
func newFaultSuite(t testing.TB) *faultSuite {
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	// The administrator, unthrottled: client-go's default of 5 requests a
	// second would pace the churn, the burst and the checks, not the test.
	cfg := cluster.RestConfig(harness.AdminToken)
	cfg.QPS, cfg.Burst = 1000, 1000
	return &faultSuite{cluster: cluster, admin: kubernetes.NewForConfigOrDie(cfg),
		namer: kube2sky.Namer{Domain: "cluster.local.", Prefix: "skydns"}}
}

func TestFaults(t *testing.T) {
	s := newFaultSuite(t)
	for _, sc := range faultScenarios() {
		t.Run(sc.name, func(t *testing.T) { s.run(t, sc) })
	}
}

// scene is what a scenario's churn, queries and closing checks work on,
// in TestFaults and TestHAFailover alike: the cluster, a client of the DNS
// etcd, the scenario's namespace, the names that never change in it, and
// the address of every skydns (kept across its restarts).
type scene struct {
	*faultSuite
	t      *testing.T
	etcdc  *clientv3.Client
	ns     string
	stable map[string][]string // Query name to its A answers, sorted.
	dns    []string
}

// faultRun is one TestFaults scenario's scene and its pod.
type faultRun struct {
	*scene
	pod *dnsPod
}

func (s *faultSuite) run(t *testing.T, sc faultScenario) {
	etcd := harness.StartEtcd(t, sc.etcdFlags...)
	pod := startDNSPodOn(t, s.cluster, etcd)
	r := &faultRun{scene: s.newScene(t, etcd.Client(), "fault-"+sc.name, pod.skydns.Addr), pod: pod}
	res := r.fault(sc)
	r.finish(&res.ending)
	t.Logf("FAULT-REPORT scenario=%s %s %s", sc.name, res.answerCounts, res.ending)
	r.check(sc, res)
}

// newScene makes the namespace and its stable names, and waits until every
// skydns at dns answers them.
func (s *faultSuite) newScene(t *testing.T, etcdc *clientv3.Client, ns string, dns ...string) *scene {
	r := &scene{faultSuite: s, t: t, etcdc: etcdc, ns: ns, dns: dns}
	createNamespace(t, s.admin, r.ns)
	r.createStable()
	return r
}

// ending is how a scenario ended: churn during the fault, then the time
// from the fault's end to etcd matching the objects, the same for changes
// made after it, and what etcd had lost or held stale at the very end.
type ending struct {
	ops, failed     int // Churn changes tried during the fault, and failed.
	recovered       time.Time
	converge, after time.Duration
	lost, stale     []string
}

func (e ending) String() string {
	return fmt.Sprintf("converge=%.2fs after=%.2fs lost=%d stale=%d churn_ops=%d churn_failed=%d",
		e.converge.Seconds(), e.after.Seconds(), len(e.lost), len(e.stale), e.ops, e.failed)
}

// finish is every scenario's end, once the fault is over (e.recovered):
// etcd converges on the objects; afterOps more changes get through too
// (after: from the last of them to etcd matching again); every service
// resolves through every skydns; and etcd is compared once more.
func (r *scene) finish(e *ending) {
	e.converge = r.converge(e.recovered)
	newChurner(r, "after-").run(afterOps)
	e.after = r.converge(time.Now())
	r.resolveAll()
	e.lost, e.stale = r.diff(context.Background())
}

// checkEnding fails the scenario on a lost or stale record.
func (r *scene) checkEnding(e ending) {
	if len(e.lost)+len(e.stale) > 0 {
		r.t.Errorf("etcd differs from the API objects at the end: lost %q, stale %q", head(e.lost), head(e.stale))
	}
}

// faultResult is what a scenario measured.
type faultResult struct {
	answerCounts // Of the queries during the fault.
	ending
}

// fault runs sc's fault with churn running, and the querier from its start
// to its end.
func (r *faultRun) fault(sc faultScenario) faultResult {
	churn := startChurn(r.scene)
	time.Sleep(churnLead) // So the fault comes in the middle of churn, changes in flight.
	q := startQuerier(r.pod.skydns.Addr, r.stable, nil)
	if sc.inject != nil {
		sc.inject(r)
	}
	r.hold(sc.hold, sc.during)
	var res faultResult
	res.ops, res.failed = churn.stop()
	res.recovered = sc.recover(r)
	res.answerCounts = q.stop().up
	return res
}

// check fails the scenario on a lost or stale record, an NXDOMAIN for a
// name that always existed, or, while skydns was up, any query it did not
// answer correctly.
func (r *faultRun) check(sc faultScenario, res faultResult) {
	r.checkEnding(res.ending)
	if res.nxdomain > 0 {
		r.t.Errorf("%d NXDOMAIN answers for names that existed throughout the fault", res.nxdomain)
	}
	if res.total < 10 {
		r.t.Errorf("only %d queries in a %s fault: the querier did not run", res.total, sc.hold)
	}
	if !sc.skydnsDown && res.correct != res.total {
		r.t.Errorf("skydns stayed up, yet answered %d of %d queries correctly (the last unanswered: %v)", res.correct, res.total, res.lastErr)
	}
}

// head is the first few of a list, for messages.
func head(s []string) []string { return s[:min(len(s), 10)] }

// hold lets the fault last d, running during meanwhile.
func (r *faultRun) hold(d time.Duration, during func(*faultRun, context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if during != nil {
		during(r, ctx)
	}
	<-ctx.Done()
}

// createStable makes the names the querier asks: two ClusterIP services, a
// headless one with two endpoints (one with a hostname) and a pod with an
// IP. They never change, so every answer for them has one right value.
func (r *scene) createStable() {
	ctx, admin, t := context.Background(), r.admin, r.t
	suffix := r.ns + ".svc.cluster.local."
	r.stable = map[string][]string{}
	for _, name := range []string{"stable-0", "stable-1"} {
		svc := must(admin.CoreV1().Services(r.ns).Create(ctx, clusterIPService(name, "http"), metav1.CreateOptions{}))(t)
		r.stable[name+"."+suffix] = []string{svc.Spec.ClusterIP}
	}
	must(admin.CoreV1().Services(r.ns).Create(ctx, headlessService("stable-hl"), metav1.CreateOptions{}))(t)
	eps := r.endpoints("stable-hl", "pet")
	must(admin.CoreV1().Endpoints(r.ns).Create(ctx, eps, metav1.CreateOptions{}))(t)
	r.stable["stable-hl."+suffix] = sorted([]string{eps.Subsets[0].Addresses[0].IP, eps.Subsets[0].Addresses[1].IP})
	ip := r.endpointIP()
	p := must(admin.CoreV1().Pods(r.ns).Create(ctx, &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "stable"},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "none"}}},
	}, metav1.CreateOptions{}))(t)
	patch := []byte(`{"status":{"podIP":"` + ip + `","podIPs":[{"ip":"` + ip + `"}]}}`)
	must(admin.CoreV1().Pods(r.ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"))(t)
	r.stable[strings.ReplaceAll(ip, ".", "-")+"."+r.ns+".pod.cluster.local."] = []string{ip}
	for name, want := range r.stable {
		for _, addr := range r.dns {
			harness.Eventually(t, 30*time.Second, "stable name "+name+" through "+addr, func() error {
				m, err := harness.Exchange(addr, "udp", name, dns.TypeA)
				return harness.WantAnswers(m, err, want...)
			})
		}
	}
}

func clusterIPService(name, port string) *v1.Service {
	return &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.ServiceSpec{Ports: []v1.ServicePort{{Name: port, Port: 80, Protocol: v1.ProtocolTCP}}}}
}

func headlessService(name string) *v1.Service {
	svc := clusterIPService(name, "http")
	svc.Spec.ClusterIP = v1.ClusterIPNone
	return svc
}

// endpoints are two fresh ready addresses for service name, the first with
// hostname.
func (r *scene) endpoints(name, hostname string) *v1.Endpoints {
	return &v1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name}, Subsets: []v1.EndpointSubset{{
		Addresses: []v1.EndpointAddress{{IP: r.endpointIP(), Hostname: hostname}, {IP: r.endpointIP()}},
		Ports:     []v1.EndpointPort{{Name: "http", Port: 8080, Protocol: v1.ProtocolTCP}},
	}}}
}

// want is every record the cluster's objects call for, by kube2sky's own
// Namer: its services' (with their endpoints) and reverse records, its
// pods' and dns-version.
func (s *faultSuite) want(ctx context.Context) (kube2sky.Records, error) {
	core := s.admin.CoreV1()
	svcs, err := core.Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	eps, err := endpointsByName(ctx, s)
	if err != nil {
		return nil, err
	}
	pods, err := core.Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := s.namer.DNSVersion()
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		for _, records := range []func(*v1.Service, *v1.Endpoints) (kube2sky.Records, []kube2sky.Skip, error){s.namer.ServiceRecords, s.namer.ReverseRecords} {
			rs, _, err := records(svc, eps[svc.Namespace+"/"+svc.Name])
			if err != nil {
				return nil, err
			}
			maps.Copy(out, rs)
		}
	}
	for i := range pods.Items {
		rs, _ := s.namer.PodRecords(&pods.Items[i])
		maps.Copy(out, rs)
	}
	return out, nil
}

func endpointsByName(ctx context.Context, s *faultSuite) (map[string]*v1.Endpoints, error) {
	list, err := s.admin.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]*v1.Endpoints{}
	for i := range list.Items {
		out[list.Items[i].Namespace+"/"+list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// diff compares the pod's etcd with want: keys missing are lost, keys
// nothing calls for or with another value are stale. Only kube2sky writes
// under /skydns/ here, so the whole prefix is compared. An error listing
// either side counts as one lost record.
func (r *scene) diff(ctx context.Context) (lost, stale []string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	want, err := r.want(ctx)
	if err != nil {
		return []string{"listing the API objects: " + err.Error()}, nil
	}
	resp, err := r.etcdc.Get(ctx, "/skydns/", clientv3.WithPrefix())
	if err != nil {
		return []string{"listing etcd: " + err.Error()}, nil
	}
	got := kube2sky.Records{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			lost = append(lost, k)
		}
	}
	for k, v := range got {
		if w, ok := want[k]; !ok || w != v {
			stale = append(stale, k)
		}
	}
	slices.Sort(lost)
	slices.Sort(stale)
	return lost, stale
}

// converge polls diff until etcd matches the objects and returns how long
// that took from recovered; past convergeWithin the scenario fails.
func (r *scene) converge(recovered time.Time) time.Duration {
	r.t.Helper()
	for {
		lost, stale := r.diff(context.Background())
		if len(lost)+len(stale) == 0 {
			return time.Since(recovered)
		}
		if time.Since(recovered) > convergeWithin {
			r.t.Fatalf("etcd did not converge within %s of the recovery: lost %d %q, stale %d %q; their history: %s",
				convergeWithin, len(lost), head(lost), len(stale), head(stale), r.history(append(head(lost), head(stale)...)))
		}
		time.Sleep(100 * time.Millisecond) // Polling interval.
	}
}

// history is what etcd still holds of the changes to keys, for a failure
// message: each key's puts and deletes with their revisions.
func (r *scene) history(keys []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now, err := r.etcdc.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return err.Error()
	}
	byKey := map[string][]string{}
	// Every key, so that every revision up to now comes with an event.
	for resp := range r.etcdc.Watch(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(1)) {
		if err := resp.Err(); err != nil {
			return err.Error()
		}
		for _, ev := range resp.Events {
			k := string(ev.Kv.Key)
			byKey[k] = append(byKey[k], fmt.Sprintf("%s@%d", ev.Type, ev.Kv.ModRevision))
		}
		if n := len(resp.Events); n > 0 && resp.Events[n-1].Kv.ModRevision >= now.Header.Revision {
			break
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "(etcd at revision %d)", now.Header.Revision)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s %v;", k, byKey[k])
	}
	return b.String()
}

// resolveAll asks every skydns for every service in the cluster until each
// answers as its objects say: a ClusterIP service its address, a headless
// one its ready endpoints' (NXDOMAIN with none), an ExternalName its CNAME.
func (r *scene) resolveAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	svcs := must(r.admin.CoreV1().Services("").List(ctx, metav1.ListOptions{}))(r.t)
	eps := must(endpointsByName(ctx, r.faultSuite))(r.t)
	for _, addr := range r.dns {
		harness.Eventually(r.t, 30*time.Second, fmt.Sprintf("all %d services resolve through %s", len(svcs.Items), addr), func() error {
			for i := range svcs.Items {
				svc := &svcs.Items[i]
				if err := resolves(addr, svc, eps[svc.Namespace+"/"+svc.Name]); err != nil {
					return fmt.Errorf("%s/%s: %w", svc.Namespace, svc.Name, err)
				}
			}
			return nil
		})
	}
}

func resolves(addr string, svc *v1.Service, eps *v1.Endpoints) error {
	name, qtype := svc.Name+"."+svc.Namespace+".svc.cluster.local.", dns.TypeA
	var want []string
	switch {
	case svc.Spec.Type == v1.ServiceTypeExternalName:
		qtype, want = dns.TypeCNAME, []string{dns.Fqdn(svc.Spec.ExternalName)}
	case benchload.IsHeadless(svc) && eps != nil:
		for _, s := range eps.Subsets {
			for _, a := range s.Addresses {
				want = append(want, a.IP)
			}
		}
	case benchload.IsHeadless(svc): // No endpoints, no records.
	default:
		want = []string{svc.Spec.ClusterIP}
	}
	m, err := harness.Exchange(addr, "udp", name, qtype)
	if len(want) == 0 {
		return harness.WantRcode(m, err, dns.RcodeNameError)
	}
	if err := harness.WantRcode(m, err, dns.RcodeSuccess); err != nil {
		return err
	}
	if got := sorted(harness.Answers(m)); !slices.Equal(got, sorted(want)) {
		return fmt.Errorf("answers %q, want %q", got, want)
	}
	return nil
}

// answerCounts classify the querier's queries: a correct answer, NXDOMAIN,
// SERVFAIL, another wrong reply, or none (refused, or timed out twice).
type answerCounts struct {
	total, correct, nxdomain, servfail, unanswered int64
	retried                                        int64 // Queries asked again after a timeout.
	lastErr                                        error // Of the last unanswered one.
	// gap is the longest time without a correct answer: from the start,
	// or from one correct answer, to the next (or to the end).
	gap time.Duration
}

// wrong is the replies that were not the right answer.
func (c answerCounts) wrong() int64 { return c.total - c.correct - c.unanswered }

func (c answerCounts) String() string {
	return fmt.Sprintf("answered=%d/%d nxdomain=%d servfail=%d unanswered=%d retried=%d gap=%.2fs",
		c.correct, c.total, c.nxdomain, c.servfail, c.unanswered, c.retried, c.gap.Seconds())
}

// availability says when a skydns is down on purpose (a scenario restarts
// it), so that its queries are counted apart: even while it is up, odd
// while it is down, one more at each change.
type availability struct{ epoch atomic.Uint64 }

func (a *availability) down() { a.epoch.Add(1) }
func (a *availability) up()   { a.epoch.Add(1) }

// queried is a querier's counts: of the queries asked and answered while
// skydns was up (all of them without an availability), and of those that
// overlapped a time it was down.
type queried struct{ up, down answerCounts }

// querier asks skydns for the stable names, one every queryEvery, until
// stopped.
type querier struct {
	cancel context.CancelFunc
	done   chan queried
}

// startQuerier queries addr; avail, if not nil, says when it is down.
func startQuerier(addr string, stable map[string][]string, avail *availability) *querier {
	ctx, cancel := context.WithCancel(context.Background())
	q := &querier{cancel: cancel, done: make(chan queried, 1)}
	names := slices.Sorted(maps.Keys(stable))
	epoch := func() uint64 {
		if avail == nil {
			return 0
		}
		return avail.epoch.Load()
	}
	go func() {
		var c queried
		tick := time.NewTicker(queryEvery)
		defer tick.Stop()
		// The gap is counted while skydns is up: it restarts at each change.
		lastGood, goodEpoch := time.Now(), epoch()
		for i := 0; ctx.Err() == nil; i++ {
			name := names[i%len(names)]
			before := epoch()
			m, err := harness.Exchange(addr, "udp", name, dns.TypeA)
			retried := false
			if netErr := net.Error(nil); errors.As(err, &netErr) && netErr.Timeout() {
				// As a stub resolver does: one lost datagram on a loaded
				// machine is not a failure of the DNS pod; two in a row are.
				retried = true
				m, err = harness.Exchange(addr, "udp", name, dns.TypeA)
			}
			after, now := epoch(), time.Now()
			counts := &c.up
			if before != after || before%2 == 1 {
				counts = &c.down
			}
			if goodEpoch != after {
				lastGood, goodEpoch = now, after
			}
			if counts.count(m, err, stable[name], retried) && counts == &c.up {
				counts.gap = max(counts.gap, now.Sub(lastGood))
				lastGood = now
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
		if goodEpoch == epoch() && goodEpoch%2 == 0 {
			c.up.gap = max(c.up.gap, time.Since(lastGood))
		}
		q.done <- c
	}()
	return q
}

// count classifies one query and says whether it was answered correctly.
func (c *answerCounts) count(m *dns.Msg, err error, want []string, retried bool) bool {
	c.total++
	if retried {
		c.retried++
	}
	switch {
	case err != nil:
		c.unanswered++
		c.lastErr = err
	case m.Rcode == dns.RcodeNameError:
		c.nxdomain++
	case m.Rcode == dns.RcodeServerFailure:
		c.servfail++
	case m.Rcode == dns.RcodeSuccess && slices.Equal(sorted(harness.Answers(m)), want):
		c.correct++
		return true
	}
	return false
}

func (q *querier) stop() queried {
	q.cancel()
	return <-q.done
}

// churner creates, updates and deletes services (and their endpoints) in
// the run's namespace. The API server is the truth the end compares with,
// so a failed call (the API server down) is counted and forgotten.
type churner struct {
	r       *scene
	prefix  string // Of the names it makes.
	live    []churned
	made    int
	ops     int
	failed  int
	timeout time.Duration
}

type churned struct {
	name     string
	headless bool
}

func newChurner(r *scene, prefix string) *churner {
	return &churner{r: r, prefix: prefix, timeout: 3 * time.Second}
}

// run makes n changes, one after another.
func (c *churner) run(n int) {
	for range n {
		c.step(context.Background())
	}
}

// step is one change: a create while few services are live, else in turn
// an update, a delete and a create.
func (c *churner) step(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	c.ops++
	var err error
	switch {
	case len(c.live) < 4 || c.ops%3 == 0:
		err = c.create(ctx)
	case c.ops%3 == 1:
		err = c.update(ctx, c.live[c.ops%len(c.live)])
	default:
		err = c.remove(ctx)
	}
	if err != nil && !errors.Is(err, context.Canceled) { // Canceled: the churn was stopped.
		c.failed++
		c.r.t.Logf("churn: %v", err)
	}
}

func (c *churner) create(ctx context.Context) error {
	s := churned{name: fmt.Sprintf("%s%d", c.prefix, c.made), headless: c.made%2 == 1}
	c.made++
	core := c.r.admin.CoreV1().Services(c.r.ns)
	if !s.headless {
		_, err := core.Create(ctx, clusterIPService(s.name, "http"), metav1.CreateOptions{})
		if err == nil {
			c.live = append(c.live, s)
		}
		return err
	}
	if _, err := core.Create(ctx, headlessService(s.name), metav1.CreateOptions{}); err != nil {
		return err
	}
	c.live = append(c.live, s)
	_, err := c.r.admin.CoreV1().Endpoints(c.r.ns).Create(ctx, c.r.endpoints(s.name, "h"+s.name), metav1.CreateOptions{})
	return err
}

// update gives a headless service's endpoints new addresses, and renames a
// ClusterIP service's port (so its SRV key moves).
func (c *churner) update(ctx context.Context, s churned) error {
	core := c.r.admin.CoreV1()
	if s.headless {
		patch := fmt.Sprintf(`{"subsets":[{"addresses":[{"ip":%q,"hostname":"h%s"},{"ip":%q}],"ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]}`,
			c.r.endpointIP(), s.name, c.r.endpointIP())
		_, err := core.Endpoints(c.r.ns).Patch(ctx, s.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	}
	patch := fmt.Sprintf(`{"spec":{"ports":[{"name":"p%d","port":80,"protocol":"TCP"}]}}`, c.ops)
	_, err := core.Services(c.r.ns).Patch(ctx, s.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// remove deletes the oldest live service.
func (c *churner) remove(ctx context.Context) error {
	s := c.live[0]
	c.live = c.live[1:]
	core := c.r.admin.CoreV1()
	if err := core.Services(c.r.ns).Delete(ctx, s.name, metav1.DeleteOptions{}); err != nil {
		return err
	}
	return nil // The API server deletes a service's Endpoints with it.
}

// churnLoop runs a churner, one change every churnEvery, until stopped.
type churnLoop struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	c      *churner
}

func startChurn(r *scene) *churnLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &churnLoop{cancel: cancel, c: newChurner(r, "churn-")}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(churnEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				l.c.step(ctx)
			}
		}
	}()
	return l
}

// stop ends the churn and returns how many changes it tried and how many
// failed.
func (l *churnLoop) stop() (ops, failed int) {
	l.cancel()
	l.wg.Wait()
	return l.c.ops, l.c.failed
}
