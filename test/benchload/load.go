// Package benchload puts the benchmarks' Services and Endpoints into a
// real apiserver: straight into its etcd in its storage format (Load),
// thousands of objects a second where creating them through the
// apiserver on a shared 2-core machine managed 20 to 60. BenchmarkKube2sky
// (BENCH_LOAD=etcd) and test/bench/compare share it.
package benchload

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skypod/skypod/test/bench/benchrecords"
	"github.com/skypod/skypod/test/harness"
)

// Objects are service i of l and its Endpoints: a ClusterIP service's
// have one address, 10.200.0.0 onwards; its ClusterIP is 10.0.1.0
// onwards, inside the benchmark's /12 (ClusterOptions.ServiceCIDR
// 10.0.0.0/12).
func Objects(l benchrecords.Layout, i int) (*v1.Service, *v1.Endpoints) {
	svc, eps := l.Objects(i)
	if eps != nil {
		return svc, eps
	}
	x := 256 + i
	svc.Spec.ClusterIP = fmt.Sprintf("10.%d.%d.%d", x>>16, x>>8&255, x&255)
	svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	return svc, &v1.Endpoints{ObjectMeta: svc.ObjectMeta, Subsets: []v1.EndpointSubset{{
		Addresses: []v1.EndpointAddress{{IP: EndpointIP(i)}},
		Ports:     []v1.EndpointPort{{Name: svc.Spec.Ports[0].Name, Port: 8080, Protocol: v1.ProtocolTCP}},
	}}}
}

// EndpointIP is the one endpoint address of ClusterIP service i.
func EndpointIP(i int) string { return fmt.Sprintf("10.%d.%d.%d", 200+i>>16, i>>8&255, i&255) }

// IsHeadless says whether svc has no ClusterIP.
func IsHeadless(svc *v1.Service) bool { return svc.Spec.ClusterIP == v1.ClusterIPNone }

// Namespaces creates the namespaces of l's services.
func Namespaces(tb testing.TB, admin kubernetes.Interface, l benchrecords.Layout) int {
	tb.Helper()
	n := (l.Services + l.PerNamespace - 1) / l.PerNamespace
	for ns := range n {
		Namespace(tb, admin, l.Namespace(ns*l.PerNamespace))
	}
	return n
}

// Namespace creates ns with its default ServiceAccount: there is no
// controller manager to make it, and pods need it.
func Namespace(tb testing.TB, admin kubernetes.Interface, ns string) {
	tb.Helper()
	ctx := context.Background()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
}

// Options change what LoadWith writes; the zero value is Load's.
type Options struct {
	// EndpointSlices also writes each service's discovery.k8s.io/v1
	// EndpointSlice, as the mirroring controller would (there is no
	// controller manager): CoreDNS's kubernetes plugin reads those, not
	// Endpoints.
	EndpointSlices bool
	// Pods also writes a Running pod for each endpoint address, with that
	// IP (Pods), as a deployment's pods behind the service.
	Pods bool
}

// perTxn is how many of l's services one transaction writes: within
// etcd's 128 operations at the most keys a service has (a Service, its
// Endpoints, an IPAddress, an EndpointSlice, its pods).
func (o Options) perTxn(l benchrecords.Layout) int {
	keys := 3
	if o.EndpointSlices {
		keys++
	}
	if o.Pods {
		keys += max(1, l.Endpoints)
	}
	return 120 / keys
}

// Load writes what creating l's services and Endpoints through the
// apiserver would store straight into its etcd, as the apiserver stores
// it: protobuf under /registry, the fields its defaulting and allocation
// would have set, and an IPAddress object for each ClusterIP, as its
// allocator makes, so its repair loop finds nothing to fix. The
// apiserver's watch caches take the objects from etcd's watch, and
// clients list and watch them through the apiserver as they would created
// ones. It writes for budget at most, and returns how many services it
// wrote and the rate of the writes, in objects a second; it returns once
// the apiserver serves the last of them.
func Load(tb testing.TB, cluster *harness.Cluster, l benchrecords.Layout, budget time.Duration) (int, float64) {
	tb.Helper()
	return LoadWith(tb, cluster, l, budget, Options{})
}

// LoadWith is Load with opts.
func LoadWith(tb testing.TB, cluster *harness.Cluster, l benchrecords.Layout, budget time.Duration, opts Options) (int, float64) {
	tb.Helper()
	perTxn := opts.perTxn(l)
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	start := time.Now()
	Namespaces(tb, cluster.Admin, l)
	etcd := cluster.Etcd.Client()
	var objects atomic.Int64
	done := Parallel(tb, ctx, 8, (l.Services+perTxn-1)/perTxn, func(batch int) error {
		ops := batchOps(tb, l, opts, batch)
		tctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := etcd.Txn(tctx).Then(ops...).Commit()
		objects.Add(int64(len(ops)))
		return err
	})
	created := min(done*perTxn, l.Services)
	waitServed(tb, cluster, etcd, l, created)
	return created, float64(objects.Load()) / time.Since(start).Seconds()
}

// batchOps are the puts of services batch*perTxn onwards.
func batchOps(tb testing.TB, l benchrecords.Layout, opts Options, batch int) []clientv3.Op {
	var ops []clientv3.Op
	perTxn := opts.perTxn(l)
	for i := batch * perTxn; i < min((batch+1)*perTxn, l.Services); i++ {
		svc, eps := Objects(l, i)
		now := metav1.Now()
		for _, m := range []*metav1.ObjectMeta{&svc.ObjectMeta, &eps.ObjectMeta} {
			m.UID, m.CreationTimestamp = uuid.NewUUID(), now
		}
		defaultService(svc)
		key := svc.Namespace + "/" + svc.Name
		ops = append(ops,
			clientv3.OpPut("/registry/services/specs/"+key, encode(tb, svc, v1.SchemeGroupVersion.WithKind("Service"))),
			clientv3.OpPut("/registry/services/endpoints/"+key, encode(tb, eps, v1.SchemeGroupVersion.WithKind("Endpoints"))))
		if !IsHeadless(svc) {
			ip := ipAddress(svc, now)
			ops = append(ops, clientv3.OpPut("/registry/ipaddresses/"+ip.Name, encode(tb, ip, networkingv1.SchemeGroupVersion.WithKind("IPAddress"))))
		}
		if opts.EndpointSlices {
			slice := EndpointSlice(eps)
			slice.UID, slice.CreationTimestamp = uuid.NewUUID(), now
			ops = append(ops, clientv3.OpPut("/registry/endpointslices/"+key, encode(tb, slice, discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"))))
		}
		if opts.Pods {
			for _, pod := range Pods(eps) {
				pod.UID, pod.CreationTimestamp = uuid.NewUUID(), now
				ops = append(ops, clientv3.OpPut("/registry/pods/"+pod.Namespace+"/"+pod.Name, encode(tb, pod, v1.SchemeGroupVersion.WithKind("Pod"))))
			}
		}
	}
	return ops
}

// defaultService sets what the apiserver's defaulting would.
func defaultService(svc *v1.Service) {
	single, cluster := v1.IPFamilyPolicySingleStack, v1.ServiceInternalTrafficPolicyCluster
	svc.Spec.Type, svc.Spec.SessionAffinity = v1.ServiceTypeClusterIP, v1.ServiceAffinityNone
	svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy = []v1.IPFamily{v1.IPv4Protocol}, &single
	svc.Spec.InternalTrafficPolicy = &cluster
	for p := range svc.Spec.Ports {
		svc.Spec.Ports[p].TargetPort = intstr.FromInt32(svc.Spec.Ports[p].Port)
	}
}

// ipAddress is the object the apiserver's allocator makes for svc's
// ClusterIP.
func ipAddress(svc *v1.Service, now metav1.Time) *networkingv1.IPAddress {
	return &networkingv1.IPAddress{
		ObjectMeta: metav1.ObjectMeta{Name: svc.Spec.ClusterIP, UID: uuid.NewUUID(), CreationTimestamp: now, Labels: map[string]string{
			networkingv1.LabelIPAddressFamily: string(v1.IPv4Protocol), networkingv1.LabelManagedBy: "ipallocator.k8s.io",
		}},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: svc.Namespace, Name: svc.Name}},
	}
}

// encode is obj in the apiserver's storage format, protobuf.
func encode(tb testing.TB, obj runtime.Object, gvk schema.GroupVersionKind) string {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(obj, &buf); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

// waitServed waits until the apiserver has the loaded objects: once the
// watch caches clients list from have reached etcd's revision after the
// last write, a read at that resource version is answered from the cache.
func waitServed(tb testing.TB, cluster *harness.Cluster, etcd *clientv3.Client, l benchrecords.Layout, created int) {
	tb.Helper()
	status, err := etcd.Status(context.Background(), cluster.Etcd.URL)
	if err != nil {
		tb.Fatal(err)
	}
	atRev := metav1.GetOptions{ResourceVersion: strconv.FormatInt(status.Header.Revision, 10)}
	last, _ := Objects(l, created-1)
	harness.Eventually(tb, 10*time.Minute, "the apiserver's caches holding the loaded objects", func() error {
		if _, err := cluster.Admin.CoreV1().Services(last.Namespace).Get(context.Background(), last.Name, atRev); err != nil {
			return err
		}
		_, err := cluster.Admin.CoreV1().Endpoints(last.Namespace).Get(context.Background(), last.Name, atRev)
		return err
	})
}

// EndpointSlice is the IPv4 slice the mirroring controller makes of eps
// (named after the service, as its one slice): ready addresses, the
// subset's ports.
func EndpointSlice(eps *v1.Endpoints) *discoveryv1.EndpointSlice {
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: eps.Namespace, Name: eps.Name, Labels: map[string]string{discoveryv1.LabelServiceName: eps.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, subset := range eps.Subsets {
		for _, a := range subset.Addresses {
			slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.IP}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		for _, p := range subset.Ports {
			slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.Port, Protocol: &p.Protocol})
		}
	}
	return slice
}

// Pods are the pods behind eps: one Running pod for each address, named
// after its service and the address's place, with that IP.
func Pods(eps *v1.Endpoints) []*v1.Pod {
	var out []*v1.Pod
	for _, subset := range eps.Subsets {
		for k, a := range subset.Addresses {
			out = append(out, &v1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: eps.Namespace, Name: fmt.Sprintf("%s-%d", eps.Name, k), Labels: map[string]string{"app": eps.Name}},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "app", Image: "app"}}, NodeName: "node-0"},
				Status:     v1.PodStatus{Phase: v1.PodRunning, PodIP: a.IP, PodIPs: []v1.PodIP{{IP: a.IP}}},
			})
		}
	}
	return out
}

// PodCount is how many pods Load writes with Options.Pods for l.
func PodCount(l benchrecords.Layout) int {
	headless := 0
	for i := range l.Services {
		if i%100 < l.HeadlessPercent {
			headless++
		}
	}
	return l.Services - headless + headless*l.Endpoints
}
