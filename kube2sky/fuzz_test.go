package kube2sky

import (
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/skydns/msg"
)

// fuzzObject is what FuzzRecords builds its objects from. flags: bits 0-1
// the service's kind (ClusterIP, headless, ExternalName, dual-stack
// ClusterIP), bit 2 publishNotReadyAddresses, bit 3 the endpoint not
// ready, bit 4 the endpoints read from an EndpointSlice.
type fuzzObject struct {
	ns, name, ip, hostname, externalName string
	portName, protocol                   string
	port                                 int32
	annotation                           string
	flags                                byte
}

func (o fuzzObject) service() *v1.Service {
	svc := service(o.ip, v1.ServicePort{Name: o.portName, Protocol: v1.Protocol(o.protocol), Port: o.port})
	svc.Namespace, svc.Name = o.ns, o.name
	switch o.flags & 3 {
	case 1:
		svc.Spec.ClusterIP = v1.ClusterIPNone
	case 2:
		svc.Spec.Type, svc.Spec.ExternalName = v1.ServiceTypeExternalName, o.externalName
	case 3:
		svc.Spec.ClusterIPs = []string{o.ip, o.externalName}
	}
	svc.Spec.PublishNotReadyAddresses = o.flags&4 != 0
	return svc
}

func (o fuzzObject) endpoints() *v1.Endpoints {
	ready := o.flags&8 == 0
	if o.flags&16 != 0 {
		return endpointsFromSlices(o.ns, o.name, []*discoveryv1.EndpointSlice{{
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{o.ip}, Hostname: &o.hostname, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
			Ports:     []discoveryv1.EndpointPort{{Name: &o.portName, Port: &o.port, Protocol: (*v1.Protocol)(&o.protocol)}},
		}})
	}
	eps := endpoints(v1.EndpointSubset{Ports: []v1.EndpointPort{{Name: o.portName, Port: o.port, Protocol: v1.Protocol(o.protocol)}}})
	eps.Namespace, eps.Name = o.ns, o.name
	eps.Annotations = map[string]string{hostnamesAnnotation: o.annotation}
	addr := v1.EndpointAddress{IP: o.ip, Hostname: o.hostname}
	if ready {
		eps.Subsets[0].Addresses = []v1.EndpointAddress{addr}
	} else {
		eps.Subsets[0].NotReadyAddresses = []v1.EndpointAddress{addr}
	}
	return eps
}

func (o fuzzObject) pod() *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: o.name}, Status: v1.PodStatus{PodIP: o.ip}}
}

// FuzzRecords builds Services, Endpoints (or EndpointSlices) and Pods
// from arbitrary fields, valid or not: the API server validates what it
// stores, but kube2sky must not trust that. A malformed object is an
// error or no record, never a panic, and whatever is written is a key of
// DNS labels (a segment "" or "a.b" would answer for, or hide, other
// names) holding a value skydns accepts.
func FuzzRecords(f *testing.F) {
	for _, flags := range []byte{0, 1, 2, 3, 1 | 4 | 8, 1 | 16} {
		f.Add("default", "testservice", "10.0.0.1", "pod-1", "www.example.com", "http", "TCP", int32(80), `{"10.0.0.1":{"HostName":"h"}}`, flags)
	}
	// What the fuzzer found before kube2sky checked every label and value
	// (flags: 1 headless, 2 ExternalName, 3 dual-stack).
	long := strings.Repeat("a", 64)
	for _, c := range []struct {
		ns, name, ip, externalName, protocol string
		port                                 int32
		flags                                byte
	}{
		{".", "0", "10.0.0.1", "www.example.com", "TCP", 80, 2},
		{"", "web", "10.0.0.1", "www.example.com", "TCP", 80, 0},
		{"0", "0", "0.0.0.0", "0.0.0.0", ".", 80, 3},
		{"default", long, "10.0.0.1", "www.example.com", "TCP", 80, 0},
		{"default", "x.testservice", "10.0.0.1", "www.example.com", "TCP", 80, 0},
		{"default", "testservice", "10.0.0.1", "www.example.com", "TCP", -73, 1},
		{"default", "testservice", "10.0.0.1", ".000000000000000000000000000", "TCP", 80, 2},
		{"default", "testservice", "10.0.0.1", long + ".example.com", "TCP", 80, 2},
		{"default", "testservice", "10.0.0.1", "1.2.3.4", "TCP", 80, 2},
	} {
		f.Add(c.ns, c.name, c.ip, "pod-1", c.externalName, "http", c.protocol, c.port, "", c.flags)
	}
	f.Fuzz(func(t *testing.T, ns, name, ip, hostname, externalName, portName, protocol string, port int32, annotation string, flags byte) {
		o := fuzzObject{ns, name, ip, hostname, externalName, portName, protocol, port, annotation, flags}
		svc, eps := o.service(), o.endpoints()
		forward, _, err := namer.ServiceRecords(svc, eps)
		if err == nil {
			checkWritable(t, o, forward, "svc", o.name)
			checkExternalName(t, o, svc, forward)
		}
		if reverse, _, err := namer.ReverseRecords(svc, eps); err == nil {
			checkWritable(t, o, reverse, "", "")
		}
		pods, _ := namer.PodRecords(o.pod())
		checkWritable(t, o, pods, "pod", dashedIP(o.ip))
	})
}

// checkWritable checks that every key of r is segments of DNS labels,
// within the object's own directory <leaf>.<ns>.<kind>.cluster.local. (for
// a kind other than ""), and every value one skydns decodes and its own
// canonical value: the registry keeps listed values' digests by that, and a
// value of kube2sky's that was not would be written again on every start.
func checkWritable(t *testing.T, o fuzzObject, r Records, kind, leaf string) {
	t.Helper()
	dir := []string{"local", "cluster", kind, strings.ToLower(o.ns), strings.ToLower(leaf)}
	for key, value := range r {
		segments, ok := msg.KeySegments(key, namer.Prefix)
		if !ok {
			t.Fatalf("key %q is not made of DNS labels; from %+v", key, o)
		}
		if kind != "" && (len(segments) < len(dir) || !slices.Equal(segments[:len(dir)], dir)) {
			t.Fatalf("key %q is outside the object's directory %q; from %+v", key, dir, o)
		}
		if _, err := msg.Unmarshal(key, []byte(value)); err != nil {
			t.Fatalf("value %s at %q does not decode: %v; from %+v", value, key, err, o)
		}
		if c := canonical(value); c != value {
			t.Fatalf("value %s at %q has the canonical value %s; from %+v", value, key, c, o)
		}
	}
}

// checkExternalName checks that an ExternalName service is a CNAME: an
// address as its target would make skydns answer A records for it.
func checkExternalName(t *testing.T, o fuzzObject, svc *v1.Service, r Records) {
	t.Helper()
	if svc.Spec.Type != v1.ServiceTypeExternalName {
		return
	}
	for key, value := range r {
		if s, err := msg.Unmarshal(key, []byte(value)); err == nil && s.HostIP() != nil {
			t.Fatalf("ExternalName written as the address %s at %q; from %+v", s.Host, key, o)
		}
	}
}
