package main

import (
	"fmt"
	"maps"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/skydns/msg"
	"github.com/skypod/skypod/test/bench/benchrecords"
)

const domain = "cluster.local."

// namer lays records out as kube2sky does.
func namer() kube2sky.Namer { return kube2sky.Namer{Domain: domain, Prefix: msg.DefaultPrefix} }

// victimName is what the victim asks for: a ClusterIP service that is in
// every scenario's records.
const victimName = "web.victim.svc." + domain

// service is a ClusterIP service's records.
func service(ns, name, ip string) kube2sky.Records {
	return mustRecords(&v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1.ServiceSpec{ClusterIP: ip, Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}},
	}, nil)
}

// externalName is an ExternalName service's record: a CNAME to target.
func externalName(ns, name, target string) kube2sky.Records {
	return mustRecords(&v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: target},
	}, nil)
}

// headless is a headless service's records with n ready endpoints.
func headless(ns, name string, n int) kube2sky.Records {
	addrs := make([]v1.EndpointAddress, n)
	for i := range addrs {
		addrs[i].IP = fmt.Sprintf("10.%d.%d.%d", 200+i>>16, (i>>8)&255, i&255)
	}
	meta := metav1.ObjectMeta{Namespace: ns, Name: name}
	return mustRecords(&v1.Service{ObjectMeta: meta, Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone}},
		&v1.Endpoints{ObjectMeta: meta, Subsets: []v1.EndpointSubset{{Addresses: addrs}}})
}

func mustRecords(svc *v1.Service, eps *v1.Endpoints) kube2sky.Records {
	r, skipped, err := namer().ServiceRecords(svc, eps)
	if err != nil || len(skipped) > 0 {
		panic(fmt.Sprint(err, skipped)) // The objects above are well formed.
	}
	return r
}

// withVictim is records plus the victim's service.
func withVictim(sets ...map[string]string) map[string]string {
	out := map[string]string(service("victim", "web", "10.0.0.10"))
	for _, s := range sets {
		maps.Copy(out, s)
	}
	return out
}

// breadthRecords are eight ExternalName services in namespace t whose
// targets are any.t.{svc|any}.{cluster|any}.{local|any}: each target
// matches all eight, so one CNAME chase fans out eight ways at every step
// of the chain.
func breadthRecords() map[string]string {
	out := map[string]string{}
	i := 0
	for _, a := range []string{"svc", "any"} {
		for _, b := range []string{"cluster", "any"} {
			for _, c := range []string{"local", "any"} {
				maps.Copy(out, externalName("t", fmt.Sprintf("s%d", i), fmt.Sprintf("any.t.%s.%s.%s", a, b, c)))
				i++
			}
		}
	}
	return withVictim(out)
}

// grid is n hand-written names n<i>.cn.cluster.local, each a directory of
// n CNAMEs, one to every name: a chase from any name branches n ways.
func grid(n int) map[string]string {
	out := map[string]string{}
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v, _ := msg.Marshal(msg.Service{Host: fmt.Sprintf("n%d.cn.%s", j, domain), TTL: 30})
			out[msg.Path(fmt.Sprintf("c%d.n%d.cn.%s", j, i, domain), msg.DefaultPrefix)] = string(v)
		}
	}
	return withVictim(out)
}

// manyServices are n services in kube2sky's layout (loadrecords').
func manyServices(n int) map[string]string {
	records, _ := benchrecords.Services(n, 5000, domain, msg.DefaultPrefix)
	return withVictim(records)
}
