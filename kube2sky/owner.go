package kube2sky

import (
	"strings"

	"github.com/skypod/skypod/skydns/msg"
)

// ownerKind says which kind of object owns a record.
type ownerKind uint8

const (
	serviceKind    ownerKind = iota + 1 // <name>.<ns>.svc.<domain> and its PTRs
	podKind                             // <a-b-c-d>.<ns>.pod.<domain>
	dnsVersionKind                      // dns-version.<domain>, owned by kube2sky itself
)

// Owner is the object a record belongs to: the work queue's key, and the
// key of what the registry holds. Built by serviceOwner, podOwner and
// ownerOfKey only.
type Owner struct {
	Kind      ownerKind
	Namespace string
	Name      string // The service's name, or the pod IP with dashes.
}

func serviceOwner(ns, name string) Owner { return Owner{Kind: serviceKind, Namespace: ns, Name: name} }

// podOwner owns the record of one pod IP in a namespace: host-network pods
// share an IP, and its record stays while any of them has it.
func podOwner(ns, ip string) Owner { return Owner{Kind: podKind, Namespace: ns, Name: dashedIP(ip)} }

var dnsVersionOwner = Owner{Kind: dnsVersionKind}

// String is the owner as logs show it: svc/ns/name, pod/ns/a-b-c-d or
// dns-version.
func (o Owner) String() string {
	switch o.Kind {
	case serviceKind:
		return "svc/" + o.Namespace + "/" + o.Name
	case podKind:
		return "pod/" + o.Namespace + "/" + o.Name
	case dnsVersionKind:
		return "dns-version"
	}
	return "unknown"
}

// ownerOfKey says which object an etcd key belongs to, and false for keys
// kube2sky does not own: anything outside its subtrees, and reverse records
// that point somewhere other than a service.
func (n Namer) ownerOfKey(key, value string) (Owner, bool) {
	if rest, ok := strings.CutPrefix(key, n.ServicesKey()); ok {
		if parts := strings.SplitN(rest, "/", 3); len(parts) >= 2 {
			return serviceOwner(parts[0], parts[1]), true
		}
		return Owner{}, false
	}
	if rest, ok := strings.CutPrefix(key, n.PodsKey()); ok {
		if parts := strings.SplitN(rest, "/", 3); len(parts) >= 2 {
			return Owner{Kind: podKind, Namespace: parts[0], Name: parts[1]}, true
		}
		return Owner{}, false
	}
	if strings.HasPrefix(key, n.ReverseKey()) {
		return n.reverseOwner(value)
	}
	if _, ok := n.DNSVersion()[key]; ok {
		return dnsVersionOwner, true
	}
	return Owner{}, false
}

// reverseOwner is the service a PTR value points into: <name>.<ns>.svc.D or
// <endpoint>.<name>.<ns>.svc.D.
func (n Namer) reverseOwner(value string) (Owner, bool) {
	s, err := msg.Unmarshal("", []byte(value))
	if err != nil {
		return Owner{}, false
	}
	rest, ok := strings.CutSuffix(strings.ToLower(s.Host), ".svc."+n.Domain)
	if !ok {
		return Owner{}, false
	}
	labels := strings.Split(rest, ".")
	if len(labels) < 2 {
		return Owner{}, false
	}
	return serviceOwner(labels[len(labels)-1], labels[len(labels)-2]), true
}
