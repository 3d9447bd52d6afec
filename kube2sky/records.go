// Package kube2sky mirrors Kubernetes Services, Endpoints and Pods into
// SkyDNS records in etcd, in the key layout and JSON bytes of the
// Kubernetes 1.2 kube2sky, plus the records of the DNS specification 1.1.0.
package kube2sky

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skypod/skypod/skydns/msg"
)

// Record fields kube2sky has always written (legacy-behaviour.md §1.5).
const (
	recordPriority = 10
	recordWeight   = 10
	recordTTL      = 30

	// hostnamesAnnotation is the 1.2-era way endpoints named their pods.
	hostnamesAnnotation = "endpoints.beta.kubernetes.io/hostnames-map"
	// tolerateUnreadyAnnotation predates spec.publishNotReadyAddresses.
	tolerateUnreadyAnnotation = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

	// dnsSchemaVersion is the DNS specification version served as TXT
	// at dns-version.<domain>, with the TTL CoreDNS uses.
	dnsSchemaVersion = "1.1.0"
	dnsVersionTTL    = 28800
)

// Records maps etcd keys to the exact values kube2sky writes there.
type Records map[string]string

// Namer turns Kubernetes objects into names and keys under one domain.
type Namer struct {
	Domain string // With the trailing dot: "cluster.local."
	Prefix string // The etcd prefix: "skydns"
}

// ServiceName is <name>.<ns>.svc.<domain>.
func (n Namer) ServiceName(ns, name string) string {
	return name + "." + ns + ".svc." + n.Domain
}

// ServiceKey is the etcd directory holding every record of a service.
func (n Namer) ServiceKey(ns, name string) string {
	return msg.Path(n.ServiceName(ns, name), n.Prefix)
}

// PodKey is the directory of one pod IP's record: <a-b-c-d>.<ns>.pod.<domain>.
func (n Namer) PodKey(ns, ip string) string {
	return msg.Path(dashedIP(ip)+"."+ns+".pod."+n.Domain, n.Prefix)
}

// ServicesKey, PodsKey and ReverseKey are the subtrees kube2sky owns.
func (n Namer) ServicesKey() string { return msg.Path("svc."+n.Domain, n.Prefix) + "/" }
func (n Namer) PodsKey() string     { return msg.Path("pod."+n.Domain, n.Prefix) + "/" }
func (n Namer) ReverseKey() string  { return msg.Path("arpa.", n.Prefix) + "/" }

// DNSVersion is the dns-version TXT record of the specification.
func (n Namer) DNSVersion() Records {
	b, _ := msg.Marshal(msg.Service{Text: dnsSchemaVersion, TTL: dnsVersionTTL})
	return Records{msg.Path("dns-version."+n.Domain, n.Prefix): string(b)}
}

// value is kube2sky's record for host (and port), and its hash label.
func value(host string, port int) (label, json string) {
	b, _ := msg.Marshal(msg.Service{Host: host, Port: port, Priority: recordPriority, Weight: recordWeight, TTL: recordTTL})
	return msg.HashLabel(b), string(b)
}

// add puts a value at <label>.<name>.
func (n Namer) add(out Records, label, name, value string) {
	out[msg.Path(label+"."+name, n.Prefix)] = value
}

// ServiceRecords are the records under a service's directory: for a
// ClusterIP service its A/AAAA and named-port SRV records, for a headless
// one a record per ready endpoint address, for ExternalName a CNAME. eps may
// be nil. An error means the objects are malformed and nothing should change.
func (n Namer) ServiceRecords(svc *v1.Service, eps *v1.Endpoints) (Records, error) {
	out := Records{}
	name := n.ServiceName(svc.Namespace, svc.Name)
	switch {
	case svc.Spec.Type == v1.ServiceTypeExternalName:
		if svc.Spec.ExternalName == "" {
			return nil, fmt.Errorf("service %s/%s: ExternalName service with no externalName", svc.Namespace, svc.Name)
		}
		// A leaf at the service name itself, not a hash-labelled leaf below
		// it: SkyDNS answers a CNAME query only for a leaf (a directory is
		// NODATA), and the Kubernetes e2e test asks for exactly that.
		_, v := value(strings.TrimSuffix(svc.Spec.ExternalName, "."), 0)
		out[msg.Path(name, n.Prefix)] = v
	case isHeadless(svc):
		if eps == nil {
			return out, nil // Records appear with the endpoints.
		}
		return out, n.headless(out, svc, eps, name)
	default:
		n.clusterIP(out, svc, name)
	}
	return out, nil
}

func isHeadless(svc *v1.Service) bool {
	return svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == v1.ClusterIPNone
}

// clusterIPs are the service's IPs, primary first.
func clusterIPs(svc *v1.Service) []string {
	if len(svc.Spec.ClusterIPs) > 0 {
		return svc.Spec.ClusterIPs
	}
	return []string{svc.Spec.ClusterIP}
}

// clusterIP writes one address record per ClusterIP and, labelled with the
// primary address's hash as in 1.2, one SRV record per named port that
// points at the service name itself.
func (n Namer) clusterIP(out Records, svc *v1.Service, name string) {
	primary := ""
	for _, ip := range clusterIPs(svc) {
		if net.ParseIP(ip) == nil {
			continue
		}
		label, v := value(ip, 0)
		n.add(out, label, name, v)
		if primary == "" {
			primary = label
		}
	}
	if primary == "" {
		return
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "" || p.Protocol == "" {
			continue
		}
		_, v := value(name, int(p.Port))
		n.add(out, primary, srvName(p.Name, string(p.Protocol), name), v)
	}
}

func srvName(port, protocol, name string) string {
	return "_" + port + "._" + strings.ToLower(protocol) + "." + name
}

// headless writes, for each ready address (and the not-ready ones when the
// service publishes them), an address record labelled with the endpoint's
// hostname or the value's hash, and one SRV record per named port of its
// subset, pointing at that per-endpoint name.
func (n Namer) headless(out Records, svc *v1.Service, eps *v1.Endpoints, name string) error {
	hostnames, err := annotatedHostnames(eps)
	if err != nil {
		return err
	}
	for _, subset := range eps.Subsets {
		for _, addr := range publishedAddresses(svc, subset) {
			if net.ParseIP(addr.IP) == nil {
				continue
			}
			label, v := endpointLabel(addr, hostnames)
			n.add(out, label, name, v)
			target := label + "." + name
			for _, p := range subset.Ports {
				if p.Name == "" || p.Protocol == "" {
					continue
				}
				_, sv := value(target, int(p.Port))
				n.add(out, label, srvName(p.Name, string(p.Protocol), name), sv)
			}
		}
	}
	return nil
}

// publishedAddresses are the addresses of a headless service's subset that
// get records, A/AAAA, SRV and PTR alike: the ready ones, and the not-ready
// ones too when the service publishes them.
func publishedAddresses(svc *v1.Service, subset v1.EndpointSubset) []v1.EndpointAddress {
	addrs := subset.Addresses
	if svc.Spec.PublishNotReadyAddresses || svc.Annotations[tolerateUnreadyAnnotation] == "true" {
		addrs = append(addrs[:len(addrs):len(addrs)], subset.NotReadyAddresses...)
	}
	return addrs
}

// endpointLabel is the label of an endpoint's own name, <label>.<service>:
// its hostname, else the hash of its record value (the name kube2sky
// assigns), and that value.
func endpointLabel(addr v1.EndpointAddress, hostnames map[string]hostnameEntry) (label, v string) {
	label, v = value(addr.IP, 0)
	if h := endpointHostname(addr, hostnames); h != "" {
		label = h
	}
	return label, v
}

// hostnameEntry is one value of the hostnames-map annotation.
type hostnameEntry struct {
	HostName string
}

func annotatedHostnames(eps *v1.Endpoints) (map[string]hostnameEntry, error) {
	raw, ok := eps.Annotations[hostnamesAnnotation]
	if !ok || raw == "" {
		return nil, nil
	}
	var m map[string]hostnameEntry
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return nil, fmt.Errorf("endpoints %s/%s: annotation %s: %w", eps.Namespace, eps.Name, hostnamesAnnotation, err)
	}
	return m, nil
}

// endpointHostname is the endpoint's own hostname field, else the 1.2
// annotation's entry for its IP; only valid DNS labels count.
func endpointHostname(addr v1.EndpointAddress, annotated map[string]hostnameEntry) string {
	for _, h := range []string{addr.Hostname, annotated[addr.IP].HostName} {
		if h != "" && len(validation.IsDNS1123Label(h)) == 0 {
			return h
		}
	}
	return ""
}

// ReverseRecords are the PTR records of a service: each ClusterIP to the
// service name, and each headless endpoint address with an A/AAAA record
// (the ready ones, and the not-ready ones the service publishes) to its own
// name, the one its A/AAAA and SRV records use (<hostname> or
// <hash>.<service>), as the DNS specification 1.1.0 asks of every ready
// endpoint.
func (n Namer) ReverseRecords(svc *v1.Service, eps *v1.Endpoints) (Records, error) {
	out := Records{}
	name := n.ServiceName(svc.Namespace, svc.Name)
	switch {
	case svc.Spec.Type == v1.ServiceTypeExternalName:
	case !isHeadless(svc):
		for _, ip := range clusterIPs(svc) {
			n.addReverse(out, ip, name)
		}
	case eps != nil:
		hostnames, err := annotatedHostnames(eps)
		if err != nil {
			return nil, err
		}
		for _, subset := range eps.Subsets {
			for _, addr := range publishedAddresses(svc, subset) {
				label, _ := endpointLabel(addr, hostnames)
				n.addReverse(out, addr.IP, label+"."+name)
			}
		}
	}
	return out, nil
}

func (n Namer) addReverse(out Records, ip, target string) {
	arpa, err := reverseName(ip)
	if err != nil {
		return
	}
	_, v := value(target, 0)
	out[msg.Path(arpa, n.Prefix)] = v
}

// reverseName is the in-addr.arpa or ip6.arpa name of ip.
func reverseName(ip string) (string, error) {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	if v4 := parsed.To4(); v4 != nil {
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa.", v4[3], v4[2], v4[1], v4[0]), nil
	}
	var b strings.Builder
	for i := len(parsed) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "%x.%x.", parsed[i]&0xf, parsed[i]>>4)
	}
	return b.String() + "ip6.arpa.", nil
}

// PodRecords are a pod's address records, one per pod IP, at
// <a-b-c-d>.<ns>.pod.<domain>. The phase is ignored, as in 1.2.
func (n Namer) PodRecords(pod *v1.Pod) Records {
	out := Records{}
	for _, ip := range podIPs(pod) {
		if net.ParseIP(ip) == nil {
			continue
		}
		label, v := value(ip, 0)
		n.add(out, label, dashedIP(ip)+"."+pod.Namespace+".pod."+n.Domain, v)
	}
	return out
}

func podIPs(pod *v1.Pod) []string {
	if len(pod.Status.PodIPs) > 0 {
		ips := make([]string, len(pod.Status.PodIPs))
		for i, ip := range pod.Status.PodIPs {
			ips[i] = ip.IP
		}
		return ips
	}
	if pod.Status.PodIP != "" {
		return []string{pod.Status.PodIP}
	}
	return nil
}

// dashedIP is kube2sky's santizeIP: 1.2.3.4 becomes 1-2-3-4 (and an IPv6
// address's colons become dashes).
func dashedIP(ip string) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(ip)
}
