package kube2sky

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

// memStore is an in-memory Store that counts what it was asked to do. Its
// revision, like etcd's, goes up by one per transaction.
type memStore struct {
	mu       sync.Mutex
	data     Records
	revision int64
	applies  int
	writes   int
	order    []string // "put k" / "delete k" in commit order.
	// afterList, when set, runs after List has taken its snapshot and
	// before it returns: a write racing a resync.
	afterList func()
	down      bool // etcd unreachable: List fails.
}

func (m *memStore) List(_ context.Context, each func(key, value string), prefixes ...string) (int64, error) {
	m.mu.Lock()
	if m.down {
		m.mu.Unlock()
		return 0, errors.New("etcd unreachable")
	}
	out := Records{}
	for k, v := range m.data {
		for _, prefix := range prefixes {
			if strings.HasPrefix(k, prefix) {
				out[k] = v
			}
		}
	}
	rev, hook := m.revision, m.afterList
	m.mu.Unlock()
	if hook != nil {
		hook()
	}
	for k, v := range out {
		each(k, v)
	}
	return rev, nil
}

func (m *memStore) Apply(_ context.Context, puts Records, deletes []string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revision++
	m.applies++
	for _, k := range slices.Sorted(maps.Keys(puts)) {
		m.data[k] = puts[k]
		m.order = append(m.order, "put "+k)
		m.writes++
	}
	for _, k := range deletes {
		delete(m.data, k)
		m.order = append(m.order, "delete "+k)
		m.writes++
	}
	return m.revision, nil
}

func (m *memStore) snapshot() (Records, int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.data), m.applies, m.writes
}

type fixture struct {
	t      *testing.T
	client *fake.Clientset
	store  *memStore
	reg    *prometheus.Registry
	ctrl   *Controller
	cancel context.CancelFunc
}

func start(t *testing.T, etcdData Records, objects ...runtime.Object) *fixture {
	t.Helper()
	return startWith(t, &memStore{data: maps.Clone(etcdData)}, objects...)
}

// startWith runs a controller over store, which may hold records already.
func startWith(t *testing.T, store *memStore, objects ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objects...)
	factory := informers.NewSharedInformerFactory(client, 0)
	if store.data == nil {
		store.data = Records{}
	}
	cfg := NewConfig()
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ctrl, err := NewController(cfg, factory, store, NewMetrics(reg), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	stopped := make(chan error, 1)
	go func() { stopped <- ctrl.Run(ctx, 2, time.Hour) }()
	f := &fixture{t: t, client: client, store: store, reg: reg, ctrl: ctrl, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
		factory.Shutdown()
	})
	f.eventually("ready", func(Records) bool { return ctrl.Ready() })
	return f
}

func (f *fixture) eventually(what string, cond func(Records) bool) Records {
	f.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		data, _, _ := f.store.snapshot()
		if cond(data) {
			return data
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: not within 3s; store: %v", what, slices.Sorted(maps.Keys(data)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metric is the value of a counter, or the sample count of a histogram,
// in the fixture's registry.
func (f *fixture) metric(name string) float64 {
	f.t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetCounter().GetValue()
	}
	f.t.Fatalf("no metric %s", name)
	return 0
}

// waitMetric waits until metric name reaches at least want.
func (f *fixture) waitMetric(name string, want float64) {
	f.t.Helper()
	f.eventually(fmt.Sprintf("%s >= %v", name, want), func(Records) bool { return f.metric(name) >= want })
}

// quiet waits until every change the handlers queued has been synced, so
// the next event-driven sync is of the next change.
func (f *fixture) quiet() {
	f.t.Helper()
	f.eventually("no change waiting", func(Records) bool {
		f.ctrl.mu.Lock()
		defer f.ctrl.mu.Unlock()
		return len(f.ctrl.enqueued) == 0 && len(f.ctrl.inFlight) == 0
	})
}

// resyncWritesNothing runs a full resync with nothing changed: once every
// owner it queued has been synced, the store must have seen no
// transaction. It returns the store's records.
func (f *fixture) resyncWritesNothing() Records {
	f.t.Helper()
	_, applies, writes := f.store.snapshot()
	syncs := f.metric("kube2sky_owner_syncs_total")
	owners, err := f.ctrl.resync(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	f.waitMetric("kube2sky_owner_syncs_total", syncs+float64(owners))
	data, a, w := f.store.snapshot()
	if a != applies || w != writes {
		f.t.Fatalf("no-change resync wrote: %d transactions, %d writes", a-applies, w-writes)
	}
	return data
}

func keysUnder(r Records, prefix string) []string {
	var out []string
	for k := range r {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func clusterService(ns, name, ip string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, ResourceVersion: "1"},
		Spec:       v1.ServiceSpec{ClusterIP: ip, Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
}

func TestStartRemovesStaleAndWritesMissing(t *testing.T) {
	stale := Records{
		// A service deleted while kube2sky was down, and an old ClusterIP.
		"/skydns/local/cluster/svc/default/gone/b882ad2c": `{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}`,
		"/skydns/local/cluster/svc/default/web/5f106532":  `{"host":"10.0.0.10","priority":10,"weight":10,"ttl":30}`,
		"/skydns/arpa/in-addr/10/0/0/10":                  `{"host":"web.default.svc.cluster.local.","priority":10,"weight":10,"ttl":30}`,
		"/skydns/local/cluster/pod/default/9-9-9-9/abc":   `{"host":"9.9.9.9"}`,
		// Not kube2sky's: must survive.
		"/skydns/local/cluster/other/x":  `{"host":"10.9.9.9"}`,
		"/skydns/arpa/in-addr/192/0/2/1": `{"host":"printer.example.com."}`,
		"/skydns/config":                 `{"ttl":30}`,
	}
	f := start(t, stale, clusterService("default", "web", "10.0.0.1"))
	data := f.eventually("synced", func(r Records) bool { return len(keysUnder(r, "/skydns/local/cluster/svc/default/web/")) == 2 })
	if got := keysUnder(data, "/skydns/local/cluster/svc/"); !slices.Equal(got, []string{
		"/skydns/local/cluster/svc/default/web/_tcp/_http/f488b1a2",
		"/skydns/local/cluster/svc/default/web/f488b1a2",
	}) {
		t.Fatalf("service records: %v", got)
	}
	for _, k := range []string{"/skydns/local/cluster/other/x", "/skydns/arpa/in-addr/192/0/2/1", "/skydns/config"} {
		if _, ok := data[k]; !ok {
			t.Errorf("%s is not kube2sky's and was removed", k)
		}
	}
	for _, k := range []string{"/skydns/arpa/in-addr/10/0/0/10", "/skydns/local/cluster/pod/default/9-9-9-9/abc"} {
		if _, ok := data[k]; ok {
			t.Errorf("stale %s survived", k)
		}
	}
	if data["/skydns/arpa/in-addr/10/0/0/1"] == "" || data["/skydns/local/cluster/dns-version"] == "" {
		t.Errorf("PTR or dns-version missing: %v", slices.Sorted(maps.Keys(data)))
	}

	f.resyncWritesNothing()
}

func TestUpdateIsOneTransactionPutsFirst(t *testing.T) {
	f := start(t, nil, clusterService("default", "web", "10.0.0.1"))
	f.eventually("synced", func(r Records) bool { return r["/skydns/local/cluster/svc/default/web/f488b1a2"] != "" })
	_, applies, _ := f.store.snapshot()
	f.store.mu.Lock()
	f.store.order = nil
	f.store.mu.Unlock()

	svc := clusterService("default", "web", "10.0.0.2")
	svc.ResourceVersion = "2"
	if _, err := f.client.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	data := f.eventually("new IP", func(r Records) bool { return r["/skydns/local/cluster/svc/default/web/d8321f45"] != "" })
	if _, ok := data["/skydns/local/cluster/svc/default/web/f488b1a2"]; ok {
		t.Fatal("old ClusterIP record survived")
	}
	if _, ok := data["/skydns/arpa/in-addr/10/0/0/1"]; ok {
		t.Fatal("old PTR survived")
	}
	_, a, _ := f.store.snapshot()
	if a != applies+1 {
		t.Fatalf("an update took %d transactions, want 1", a-applies)
	}
	f.store.mu.Lock()
	order := f.store.order
	f.store.mu.Unlock()
	seenDelete := false
	for _, op := range order {
		if strings.HasPrefix(op, "delete") {
			seenDelete = true
		} else if seenDelete {
			t.Fatalf("a put after a delete (an NXDOMAIN gap): %v", order)
		}
	}

	if err := f.client.CoreV1().Services("default").Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("deleted", func(r Records) bool {
		return len(keysUnder(r, "/skydns/local/cluster/svc/")) == 0 && len(keysUnder(r, "/skydns/arpa/")) == 0
	})
}

func TestPodsSharingAnIP(t *testing.T) {
	pod := func(name string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1"},
			Status: v1.PodStatus{PodIP: "1.2.3.4"}}
	}
	f := start(t, nil, pod("a"), pod("b"))
	dir := "/skydns/local/cluster/pod/default/1-2-3-4/"
	f.eventually("pod record", func(r Records) bool { return len(keysUnder(r, dir)) == 1 })
	f.quiet()
	events := f.metric("kube2sky_event_to_etcd_seconds")
	if err := f.client.CoreV1().Pods("default").Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The deletion is the only change: its sync is the next one observed.
	f.waitMetric("kube2sky_event_to_etcd_seconds", events+1)
	if data, _, _ := f.store.snapshot(); len(keysUnder(data, dir)) != 1 {
		t.Fatal("deleting one host-network pod removed the record the other still has")
	}
	if err := f.client.CoreV1().Pods("default").Delete(context.Background(), "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("last pod gone", func(r Records) bool { return len(keysUnder(r, dir)) == 0 })
}

func TestHeadlessFollowsEndpointsIncludingDeletion(t *testing.T) {
	svc := clusterService("default", "db", "None")
	eps := &v1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", ResourceVersion: "1"},
		Subsets: []v1.EndpointSubset{{
			Addresses: []v1.EndpointAddress{{IP: "10.1.0.1", Hostname: "db-0"}, {IP: "10.1.0.2"}},
			Ports:     []v1.EndpointPort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		}},
	}
	f := start(t, nil, svc, eps)
	dir := "/skydns/local/cluster/svc/default/db/"
	f.eventually("headless records", func(r Records) bool { return len(keysUnder(r, dir)) == 4 })
	if err := f.client.CoreV1().Endpoints("default").Delete(context.Background(), "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("endpoints deletion handled", func(r Records) bool { return len(keysUnder(r, dir)) == 0 })
}

// One endpoint IP two headless services select has one PTR. One service
// holds it: a resync with nothing changed does not hand it back and forth
// (no write at all), and when the holder is deleted the other claims it at
// once, not at the next full resync.
func TestHeadlessServicesSharingAnEndpointIP(t *testing.T) {
	const ptr = "/skydns/arpa/in-addr/10/1/0/5"
	headless := func(name string) (*v1.Service, *v1.Endpoints) {
		return clusterService("default", name, "None"), &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1"},
			Subsets: []v1.EndpointSubset{{
				Addresses: []v1.EndpointAddress{{IP: "10.1.0.5"}},
				Ports:     []v1.EndpointPort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
			}},
		}
	}
	svcA, epsA := headless("a")
	svcB, epsB := headless("b")
	f := start(t, nil, svcA, epsA, svcB, epsB)
	pointsInto := func(r Records, name string) bool {
		return strings.Contains(r[ptr], "."+name+".default.svc.cluster.local.\"")
	}
	data := f.eventually("PTR", func(r Records) bool { return pointsInto(r, "a") || pointsInto(r, "b") })
	f.quiet()
	holder, other := "a", "b"
	if pointsInto(data, "b") {
		holder, other = "b", "a"
	}

	if data := f.resyncWritesNothing(); !pointsInto(data, holder) {
		t.Fatalf("PTR after a no-change resync %s, want %s's", data[ptr], holder)
	}

	if err := f.client.CoreV1().Services("default").Delete(context.Background(), holder, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.eventually("the other service's PTR", func(r Records) bool { return pointsInto(r, other) })
	f.quiet()
	if data, _, _ := f.store.snapshot(); !pointsInto(data, other) || len(keysUnder(data, "/skydns/local/cluster/svc/default/"+holder+"/")) != 0 {
		t.Errorf("after deleting %s: PTR %q; its records %v", holder, data[ptr], keysUnder(data, "/skydns/local/cluster/svc/"))
	}
}

// skipped is kube2sky_skipped_records_total{reason}.
func (f *fixture) skipped(reason string) float64 {
	f.t.Helper()
	return testutil.ToFloat64(f.ctrl.metrics.skipped.WithLabelValues(reason))
}

// An ExternalName that turns into an IP loses its record (not left as it
// was, as a malformed object's are), is counted once however often its
// owner syncs, and again only after it was a name in between.
func TestExternalNameIPIsSkippedAndCountedOnce(t *testing.T) {
	const leaf = "/skydns/local/cluster/svc/default/ext"
	ext := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default", ResourceVersion: "1"},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "www.example.com"},
	}
	f := start(t, nil, ext, clusterService("default", "web", "10.0.0.10"))
	f.eventually("the CNAME leaf", func(r Records) bool { return r[leaf] != "" })
	setTarget := func(target, rv string) {
		ext.Spec.ExternalName, ext.ResourceVersion = target, rv
		if _, err := f.client.CoreV1().Services("default").Update(context.Background(), ext, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	setTarget("169.254.169.254", "2")
	f.eventually("the leaf deleted", func(r Records) bool { return r[leaf] == "" })
	f.quiet()
	data := f.resyncWritesNothing()
	if len(keysUnder(data, "/skydns/local/cluster/svc/default/web/")) != 2 || f.skipped(skipExternalNameIP) != 1 {
		t.Fatalf("after a resync: web's records %v, skipped %v, want 2 and 1", keysUnder(data, "/skydns/local/cluster/svc/default/web/"), f.skipped(skipExternalNameIP))
	}

	setTarget("www.example.com", "3")
	f.eventually("the CNAME leaf back", func(r Records) bool { return r[leaf] != "" })
	setTarget("169.254.169.254", "4")
	f.eventually("the leaf deleted again", func(r Records) bool { return r[leaf] == "" })
	if got := f.skipped(skipExternalNameIP); got != 2 {
		t.Errorf("skipped %v after the second change to an IP, want 2", got)
	}
	if f.skipped(skipLabel) != 0 || f.skipped(skipValue) != 0 {
		t.Errorf("other reasons counted: %v %v", f.skipped(skipLabel), f.skipped(skipValue))
	}
}
