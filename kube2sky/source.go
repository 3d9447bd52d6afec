package kube2sky

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// podOwnerIndex finds the pods of one pod owner (namespace and IP).
const podOwnerIndex = "owner"

// source is the desired side: the records the API objects in the informer
// caches call for, one owner at a time.
type source struct {
	namer     Namer
	slices    bool
	services  corelisters.ServiceLister
	endpoints corelisters.EndpointsLister
	epSlices  discoverylisters.EndpointSliceLister
	pods      cache.Indexer
}

// watched is an informer and the owners each of its objects affects.
type watched struct {
	informer cache.SharedIndexInformer
	owners   func(obj any) []Owner
}

// newSource registers the informers it reads with factory, and returns
// them with the owners their objects affect.
func newSource(namer Namer, useSlices bool, factory informers.SharedInformerFactory) (*source, []watched, error) {
	s := &source{namer: namer, slices: useSlices}
	svcInformer := factory.Core().V1().Services()
	s.services = svcInformer.Lister()
	w := []watched{{svcInformer.Informer(), func(obj any) []Owner {
		svc := obj.(*v1.Service)
		return []Owner{serviceOwner(svc.Namespace, svc.Name)}
	}}}
	if useSlices {
		inf := factory.Discovery().V1().EndpointSlices()
		s.epSlices = inf.Lister()
		w = append(w, watched{inf.Informer(), func(obj any) []Owner {
			es := obj.(*discoveryv1.EndpointSlice)
			if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
				return []Owner{serviceOwner(es.Namespace, svc)}
			}
			return nil
		}})
	} else {
		inf := factory.Core().V1().Endpoints()
		s.endpoints = inf.Lister()
		w = append(w, watched{inf.Informer(), func(obj any) []Owner {
			e := obj.(*v1.Endpoints)
			return []Owner{serviceOwner(e.Namespace, e.Name)}
		}})
	}
	podInformer := factory.Core().V1().Pods().Informer()
	if err := podInformer.AddIndexers(cache.Indexers{podOwnerIndex: func(obj any) ([]string, error) {
		var keys []string
		for _, o := range podOwners(obj) {
			keys = append(keys, o.String())
		}
		return keys, nil
	}}); err != nil {
		return nil, nil, err
	}
	s.pods = podInformer.GetIndexer()
	w = append(w, watched{podInformer, podOwners})
	for _, inf := range w {
		if err := inf.informer.SetTransform(keepUsed); err != nil {
			return nil, nil, err
		}
	}
	return s, w, nil
}

// podOwners are the owners of a pod's records: one per pod IP.
func podOwners(obj any) []Owner {
	p := obj.(*v1.Pod)
	var owners []Owner
	for _, ip := range podIPs(p) {
		owners = append(owners, podOwner(p.Namespace, ip))
	}
	return owners
}

// owners are every owner the cached objects call for records of.
func (s *source) owners() map[Owner]bool {
	out := map[Owner]bool{dnsVersionOwner: true}
	svcs, _ := s.services.List(labels.Everything())
	for _, svc := range svcs {
		out[serviceOwner(svc.Namespace, svc.Name)] = true
	}
	for _, obj := range s.pods.List() {
		for _, o := range podOwners(obj) {
			out[o] = true
		}
	}
	return out
}

// desired is what etcd should hold for owner, and the records left out of
// it. An error means its objects are malformed.
func (s *source) desired(owner Owner) (Records, []Skip, error) {
	switch owner.Kind {
	case serviceKind:
		return s.serviceDesired(owner.Namespace, owner.Name)
	case podKind:
		r, skipped := s.podDesired(owner)
		return r, skipped, nil
	case dnsVersionKind:
		return s.namer.DNSVersion(), nil, nil
	}
	return nil, nil, fmt.Errorf("unknown owner %v", owner)
}

func (s *source) serviceDesired(ns, name string) (Records, []Skip, error) {
	svc, err := s.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return Records{}, nil, nil // Deleted: everything it owned goes.
	}
	if err != nil {
		return nil, nil, err
	}
	eps, err := s.endpointsOf(ns, name)
	if err != nil {
		return nil, nil, err
	}
	return s.namer.serviceOwned(svc, eps)
}

// endpointsOf returns the service's endpoints, from EndpointSlices when
// configured (merged into the Endpoints shape), or nil if there are none.
func (s *source) endpointsOf(ns, name string) (*v1.Endpoints, error) {
	if !s.slices {
		eps, err := s.endpoints.Endpoints(ns).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return eps, err
	}
	slices, err := s.epSlices.EndpointSlices(ns).List(serviceSelector(name))
	if err != nil || len(slices) == 0 {
		return nil, err
	}
	return endpointsFromSlices(ns, name, slices), nil
}

// podDesired is the one record of a pod IP while any pod in the namespace
// has it.
func (s *source) podDesired(owner Owner) (Records, []Skip) {
	rs := s.namer.newSet()
	objs, _ := s.pods.ByIndex(podOwnerIndex, owner.String())
	for _, obj := range objs {
		pod := obj.(*v1.Pod)
		for _, ip := range podIPs(pod) {
			if podOwner(pod.Namespace, ip) == owner {
				rs.podIP(pod.Namespace, ip)
			}
		}
	}
	return rs.records, rs.skipped
}
