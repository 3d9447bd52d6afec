// Package kube2sky mirrors Kubernetes Services, Endpoints and Pods into
// SkyDNS records in etcd, in the key layout and JSON bytes of the
// Kubernetes 1.2 kube2sky, plus the records of the DNS specification 1.1.0.
package kube2sky

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"strconv"
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

// ServiceRecords are the records under a service's directory: for a
// ClusterIP service its A/AAAA and named-port SRV records, for a headless
// one a record per ready endpoint address, for ExternalName a CNAME. eps may
// be nil. Records skydns could not serve as meant are left out and listed
// in skipped; an error means the objects are malformed and nothing should
// change.
func (n Namer) ServiceRecords(svc *v1.Service, eps *v1.Endpoints) (Records, []Skip, error) {
	rs := n.newSet()
	name, ok := rs.serviceName(svc)
	switch {
	case !ok: // Not a name: nothing to write, and noted.
	case svc.Spec.Type == v1.ServiceTypeExternalName:
		if svc.Spec.ExternalName == "" {
			return nil, nil, fmt.Errorf("service %s/%s: ExternalName service with no externalName", svc.Namespace, svc.Name)
		}
		rs.externalName(name, svc.Spec.ExternalName)
	case isHeadless(svc):
		if eps == nil {
			break // Records appear with the endpoints.
		}
		if err := rs.headless(svc, eps, name); err != nil {
			return nil, nil, err
		}
	default:
		rs.clusterIP(svc, name)
	}
	return rs.records, rs.skipped, nil
}

// serviceOwned is every record a service calls for: ServiceRecords and
// ReverseRecords together.
func (n Namer) serviceOwned(svc *v1.Service, eps *v1.Endpoints) (Records, []Skip, error) {
	out, skipped, err := n.ServiceRecords(svc, eps)
	if err != nil {
		return nil, nil, err
	}
	rev, revSkipped, err := n.ReverseRecords(svc, eps)
	if err != nil {
		return nil, nil, err
	}
	maps.Copy(out, rev)
	return out, append(skipped, revSkipped...), nil
}

// externalName writes a leaf at the service name itself, not a
// hash-labelled leaf below it: SkyDNS answers a CNAME query only for a leaf
// (a directory is NODATA), and the Kubernetes e2e test asks for exactly
// that. skydns serves a host that parses as an IP as an A/AAAA record, so
// an externalName such as 169.254.169.254, a name to the DNS specification
// and the API server, has no value that means the CNAME: it is left out
// rather than become an address no Endpoints would be allowed to hold.
func (rs *recordSet) externalName(name, target string) {
	_, v := value(strings.TrimSuffix(target, "."), 0)
	if s, err := msg.Unmarshal("", []byte(v)); err == nil && s.HostIP() != nil {
		rs.skip(name, skipExternalNameIP, fmt.Errorf("externalName %q would be served as an address, not a CNAME", target))
		return
	}
	rs.put(name, v)
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
func (rs *recordSet) clusterIP(svc *v1.Service, name string) {
	primary := ""
	for _, ip := range clusterIPs(svc) {
		if net.ParseIP(ip) == nil {
			continue
		}
		label, v := value(ip, 0)
		rs.add(v, name, label)
		if primary == "" {
			primary = label
		}
	}
	if primary == "" {
		return
	}
	for _, p := range svc.Spec.Ports {
		rs.srv(primary, p.Name, p.Protocol, int(p.Port), name, name)
	}
}

// srv writes the SRV record <label>._<port>._<protocol>.<name> to target,
// for a port with a name and a protocol (others have none, as in 1.2).
func (rs *recordSet) srv(label, port string, protocol v1.Protocol, number int, name, target string) {
	if port == "" || protocol == "" {
		return
	}
	_, v := value(target, number)
	rs.add(v, name, label, "_"+port, "_"+strings.ToLower(string(protocol)))
}

// headless writes, for each ready address (and the not-ready ones when the
// service publishes them), an address record labelled with the endpoint's
// hostname or the value's hash, and one SRV record per named port of its
// subset, pointing at that per-endpoint name.
func (rs *recordSet) headless(svc *v1.Service, eps *v1.Endpoints, name string) error {
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
			target, ok := rs.add(v, name, label)
			if !ok {
				continue
			}
			for _, p := range subset.Ports {
				rs.srv(label, p.Name, p.Protocol, int(p.Port), name, target)
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
// endpoint. Skipped and the error are as for ServiceRecords.
func (n Namer) ReverseRecords(svc *v1.Service, eps *v1.Endpoints) (Records, []Skip, error) {
	rs := n.newSet()
	name, ok := rs.serviceName(svc)
	switch {
	case !ok || svc.Spec.Type == v1.ServiceTypeExternalName:
	case !isHeadless(svc):
		for _, ip := range clusterIPs(svc) {
			rs.addReverse(ip, name)
		}
	case eps != nil:
		hostnames, err := annotatedHostnames(eps)
		if err != nil {
			return nil, nil, err
		}
		for _, subset := range eps.Subsets {
			for _, addr := range publishedAddresses(svc, subset) {
				label, _ := endpointLabel(addr, hostnames)
				if target, ok := rs.name(name, label); ok {
					rs.addReverse(addr.IP, target)
				}
			}
		}
	}
	return rs.records, rs.skipped, nil
}

func (rs *recordSet) addReverse(ip, target string) {
	zone, labels, err := reverseLabels(ip)
	if err != nil {
		return
	}
	_, v := value(target, 0)
	rs.add(v, zone, labels...)
}

// reverseLabels are the labels of ip's in-addr.arpa or ip6.arpa name, leaf
// first, and that zone.
func reverseLabels(ip string) (zone string, labels []string, err error) {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return "", nil, fmt.Errorf("%q is not an IP address", ip)
	}
	if v4 := parsed.To4(); v4 != nil {
		for i := len(v4) - 1; i >= 0; i-- {
			labels = append(labels, strconv.Itoa(int(v4[i])))
		}
		return "in-addr.arpa.", labels, nil
	}
	for i := len(parsed) - 1; i >= 0; i-- {
		labels = append(labels, strconv.FormatUint(uint64(parsed[i]&0xf), 16), strconv.FormatUint(uint64(parsed[i]>>4), 16))
	}
	return "ip6.arpa.", labels, nil
}

// PodRecords are a pod's address records, one per pod IP, at
// <a-b-c-d>.<ns>.pod.<domain>. The phase is ignored, as in 1.2.
func (n Namer) PodRecords(pod *v1.Pod) (Records, []Skip) {
	rs := n.newSet()
	for _, ip := range podIPs(pod) {
		rs.podIP(pod.Namespace, ip)
	}
	return rs.records, rs.skipped
}

// podIP writes the record of one pod IP.
func (rs *recordSet) podIP(ns, ip string) {
	if net.ParseIP(ip) == nil {
		return
	}
	label, v := value(ip, 0)
	rs.add(v, "pod."+rs.Domain, label, dashedIP(ip), ns)
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
