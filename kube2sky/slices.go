package kube2sky

import (
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// serviceSelector selects the EndpointSlices of one service.
func serviceSelector(name string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
}

// endpointsFromSlices merges a service's EndpointSlices into the Endpoints
// shape the record builder reads: one subset per slice, ready endpoints as
// addresses and the rest as not-ready ones (an absent condition is ready).
func endpointsFromSlices(ns, name string, slices []*discoveryv1.EndpointSlice) *v1.Endpoints {
	eps := &v1.Endpoints{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, es := range slices {
		var subset v1.EndpointSubset
		for _, p := range es.Ports {
			ep := v1.EndpointPort{}
			if p.Name != nil {
				ep.Name = *p.Name
			}
			if p.Port != nil {
				ep.Port = *p.Port
			}
			if p.Protocol != nil {
				ep.Protocol = *p.Protocol
			}
			subset.Ports = append(subset.Ports, ep)
		}
		for _, e := range es.Endpoints {
			hostname := ""
			if e.Hostname != nil {
				hostname = *e.Hostname
			}
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			for _, ip := range e.Addresses {
				addr := v1.EndpointAddress{IP: ip, Hostname: hostname}
				if ready {
					subset.Addresses = append(subset.Addresses, addr)
				} else {
					subset.NotReadyAddresses = append(subset.NotReadyAddresses, addr)
				}
			}
		}
		eps.Subsets = append(eps.Subsets, subset)
	}
	return eps
}
