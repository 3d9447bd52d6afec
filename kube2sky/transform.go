package kube2sky

import (
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// keepUsed is every informer's transform: it replaces each object, before
// the cache stores it, by a copy holding only what the records are made
// of, so the cache does not keep managed fields, annotations and labels
// nobody reads, or whole pod specs and statuses, for every object in the
// cluster. Pods are watched at all for their <a-b-c-d>.<ns>.pod records,
// which need only the pod's namespace and IPs.
//
// Every copy keeps the name, namespace, UID and resource version: the
// cache keys objects by name, and the event handler compares resource
// versions to skip resyncs with no change.
func keepUsed(obj any) (any, error) {
	switch o := obj.(type) {
	case *v1.Service:
		return slimService(o), nil
	case *v1.Endpoints:
		return &v1.Endpoints{ObjectMeta: slimMeta(o.ObjectMeta, hostnamesAnnotation), Subsets: slimSubsets(o.Subsets)}, nil
	case *discoveryv1.EndpointSlice:
		return slimSlice(o), nil
	case *v1.Pod:
		return &v1.Pod{ObjectMeta: slimMeta(o.ObjectMeta), Status: v1.PodStatus{PodIP: o.Status.PodIP, PodIPs: o.Status.PodIPs}}, nil
	}
	return obj, nil // A tombstone or anything else passes as it is.
}

// slimMeta is the identity of an object and the annotations named.
func slimMeta(m metav1.ObjectMeta, annotations ...string) metav1.ObjectMeta {
	out := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
	for _, a := range annotations {
		if v, ok := m.Annotations[a]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[a] = v
		}
	}
	return out
}

// slimService keeps what ServiceRecords and ReverseRecords read: the type,
// addresses, named ports and whether not-ready endpoints are published.
func slimService(s *v1.Service) *v1.Service {
	out := &v1.Service{ObjectMeta: slimMeta(s.ObjectMeta, tolerateUnreadyAnnotation), Spec: v1.ServiceSpec{
		Type: s.Spec.Type, ClusterIP: s.Spec.ClusterIP, ClusterIPs: s.Spec.ClusterIPs,
		ExternalName: s.Spec.ExternalName, PublishNotReadyAddresses: s.Spec.PublishNotReadyAddresses,
	}}
	for _, p := range s.Spec.Ports {
		out.Spec.Ports = append(out.Spec.Ports, v1.ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port})
	}
	return out
}

// slimSubsets keeps each address's IP and hostname and the ports, not the
// target references and node names.
func slimSubsets(subsets []v1.EndpointSubset) []v1.EndpointSubset {
	out := make([]v1.EndpointSubset, len(subsets))
	for i, s := range subsets {
		out[i] = v1.EndpointSubset{Addresses: slimAddresses(s.Addresses), NotReadyAddresses: slimAddresses(s.NotReadyAddresses)}
		for _, p := range s.Ports {
			out[i].Ports = append(out[i].Ports, v1.EndpointPort{Name: p.Name, Port: p.Port, Protocol: p.Protocol})
		}
	}
	return out
}

func slimAddresses(addrs []v1.EndpointAddress) []v1.EndpointAddress {
	if addrs == nil {
		return nil
	}
	out := make([]v1.EndpointAddress, len(addrs))
	for i, a := range addrs {
		out[i] = v1.EndpointAddress{IP: a.IP, Hostname: a.Hostname}
	}
	return out
}

// slimSlice keeps the service-name label the lister selects by, the ports,
// and each endpoint's addresses, hostname and readiness.
func slimSlice(es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	meta := slimMeta(es.ObjectMeta)
	if svc, ok := es.Labels[discoveryv1.LabelServiceName]; ok {
		meta.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	}
	out := &discoveryv1.EndpointSlice{ObjectMeta: meta, AddressType: es.AddressType}
	for _, p := range es.Ports {
		out.Ports = append(out.Ports, discoveryv1.EndpointPort{Name: p.Name, Protocol: p.Protocol, Port: p.Port})
	}
	for _, e := range es.Endpoints {
		out.Endpoints = append(out.Endpoints, discoveryv1.Endpoint{
			Addresses: e.Addresses, Hostname: e.Hostname, Conditions: discoveryv1.EndpointConditions{Ready: e.Conditions.Ready},
		})
	}
	return out
}
