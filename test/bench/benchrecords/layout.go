package benchrecords

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Layout is a mix of services, the one docs/reliability.md measures with:
// loadrecords writes its records into etcd, BenchmarkKube2sky creates its
// objects in an apiserver.
type Layout struct {
	Services, PerNamespace int
	HeadlessPercent        int // Of services: headless, with Endpoints addresses each.
	Endpoints              int // Addresses of each headless service.
	NamedPercent           int // Of services: with a named port (an SRV record each).
}

// Namespace is service i's namespace, ns-<i/PerNamespace>.
func (l Layout) Namespace(i int) string { return fmt.Sprintf("ns-%d", i/l.PerNamespace) }

// Objects are service i and, for a headless one, its endpoints (nil
// otherwise). Service i's share bucket is i mod 100: the first
// HeadlessPercent buckets are headless, the next NamedPercent have a named
// port. A ClusterIP service's address is 10.<100+i>>16>.<i>>8>.<i>; the
// headless endpoints' addresses are 172.16.0.0 onwards.
func (l Layout) Objects(i int) (*v1.Service, *v1.Endpoints) {
	meta := metav1.ObjectMeta{Namespace: l.Namespace(i), Name: fmt.Sprintf("svc-%d", i)}
	svc := &v1.Service{ObjectMeta: meta, Spec: v1.ServiceSpec{ClusterIP: fmt.Sprintf("10.%d.%d.%d", 100+i>>16, (i>>8)&255, i&255)}}
	bucket := i % 100
	port := v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP}
	if bucket >= l.HeadlessPercent && bucket < l.HeadlessPercent+l.NamedPercent {
		port.Name = "http"
	}
	svc.Spec.Ports = []v1.ServicePort{port}
	if bucket >= l.HeadlessPercent {
		return svc, nil
	}
	svc.Spec.ClusterIP = v1.ClusterIPNone
	subset := v1.EndpointSubset{Ports: []v1.EndpointPort{{Port: 80, Protocol: v1.ProtocolTCP}}}
	for e := 0; e < l.Endpoints; e++ {
		j := i*l.Endpoints + e
		subset.Addresses = append(subset.Addresses, v1.EndpointAddress{IP: fmt.Sprintf("172.%d.%d.%d", 16+j>>16, (j>>8)&255, j&255)})
	}
	return svc, &v1.Endpoints{ObjectMeta: meta, Subsets: []v1.EndpointSubset{subset}}
}
