package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/skypod/skypod/test/bench/benchrecords"
	"github.com/skypod/skypod/test/benchload"
)

// The query mixes, each a dnsperf file generated from the loaded objects.
const (
	mixA         = "a"         // In-zone A of ClusterIP services: hits.
	mixSRV       = "srv"       // SRV of named ports: _http._tcp.<svc>.<ns>.svc.<domain>.
	mixHeadless  = "headless"  // A of headless services: five addresses each.
	mixPTR       = "ptr"       // PTR of ClusterIPs and headless endpoints' addresses.
	mixNXDomain  = "nxdomain"  // In-zone misses of an ndots:5 search list.
	mixForward   = "forward"   // Out-of-zone names, forwarded to the fake upstream.
	mixRealistic = "realistic" // What a pod's glibc resolver sends (A and AAAA, search list).
)

// allMixes are the mixes in report order.
var allMixes = []string{mixA, mixSRV, mixHeadless, mixPTR, mixNXDomain, mixForward, mixRealistic}

// inZone says whether a mix asks only for names in the cluster's zones,
// the mixes the ≥90%-of-the-ceiling target is about.
func inZone(mix string) bool { return mix != mixForward && mix != mixRealistic }

// externalNames is how many distinct out-of-zone names the forward mix
// cycles through: few enough that a cache of forwarded replies holds
// them all, as a cluster's popular external names.
const externalNames = 1000

// mixQueries are mix's dnsperf lines ("name TYPE") for the services of l
// in domain, shuffled with seed so that every server gets the same order.
func mixQueries(mix string, l benchrecords.Layout, domain string, seed uint64) []string {
	var lines []string
	for i := range l.Services {
		lines = append(lines, serviceQueries(mix, l, domain, i)...)
	}
	if mix == mixForward {
		for i := range externalNames {
			lines = append(lines, fmt.Sprintf("ext-%d.example.com. A", i))
		}
	}
	r := rand.New(rand.NewPCG(seed, 0))
	if mix == mixRealistic { // Keep each lookup's queries in their order.
		return shuffledGroups(lines, r)
	}
	r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return lines
}

// serviceQueries are mix's queries about service i.
func serviceQueries(mix string, l benchrecords.Layout, domain string, i int) []string {
	svc, eps := benchload.Objects(l, i)
	fqdn := fmt.Sprintf("%s.%s.svc.%s", svc.Name, svc.Namespace, domain)
	headless := benchload.IsHeadless(svc)
	switch mix {
	case mixA:
		return when(!headless, fqdn+" A")
	case mixSRV:
		if name := svc.Spec.Ports[0].Name; name != "" {
			return []string{fmt.Sprintf("_%s._tcp.%s SRV", name, fqdn)}
		}
	case mixHeadless:
		return when(headless, fqdn+" A")
	case mixPTR:
		return ptrQueries(svc.Spec.ClusterIP, eps.Subsets[0].Addresses, headless)
	case mixNXDomain:
		return searchMisses(strings.TrimSuffix(fqdn, "."), svc.Namespace, domain)
	case mixRealistic:
		return []string{strings.Join(realisticLookup(svc.Name, svc.Namespace, domain, i), "\n")}
	}
	return nil
}

func when(ok bool, line string) []string {
	if ok {
		return []string{line}
	}
	return nil
}

// ptrQueries ask for the ClusterIP's name, or for each headless endpoint
// address's: the PTR records kube2sky writes (and CoreDNS answers).
func ptrQueries(clusterIP string, addrs []v1.EndpointAddress, headless bool) []string {
	if !headless {
		return []string{reverseName(clusterIP) + " PTR"}
	}
	var out []string
	for _, a := range addrs {
		out = append(out, reverseName(a.IP)+" PTR")
	}
	return out
}

// reverseName is the in-addr.arpa name of an IPv4 address.
func reverseName(ip string) string {
	o := strings.Split(ip, ".")
	slices.Reverse(o)
	return strings.Join(o, ".") + ".in-addr.arpa."
}

// searchList is a pod's in namespace ns, as the kubelet writes it.
func searchList(ns, domain string) []string {
	return []string{ns + ".svc." + domain, "svc." + domain, domain}
}

// searchMisses are the names a pod in ns asks before the absolute name
// when it looks up name (fewer than five dots: ndots:5), each NXDOMAIN.
func searchMisses(name, ns, domain string) []string {
	var out []string
	for _, s := range searchList(ns, domain) {
		out = append(out, name+"."+s+" A")
	}
	return out
}

// realisticLookup is what glibc sends (one line each) when a pod in the
// service's namespace resolves a name for service i with getaddrinfo
// (AF_UNSPEC: an A and an AAAA for each candidate), walking the search
// list until a candidate has an answer, as pods name services: by the
// bare name in their own namespace, <svc>.<ns>, <svc>.<ns>.svc, and one
// lookup in five an external name, which misses the whole list first.
func realisticLookup(name, ns, domain string, i int) []string {
	target := []string{name, name + "." + ns, name + "." + ns + ".svc", fmt.Sprintf("ext-%d.example.com", i%externalNames), name}[i%5]
	var out []string
	for _, s := range searchList(ns, domain) {
		cand := target + "." + s
		out = append(out, cand+" A", cand+" AAAA")
		if cand == name+"."+ns+".svc."+domain {
			return out // The first candidate that exists ends the walk.
		}
	}
	return append(out, target+". A", target+". AAAA")
}

// shuffledGroups shuffles lines, each a group of queries joined by
// newlines, and returns the queries one a line.
func shuffledGroups(groups []string, r *rand.Rand) []string {
	r.Shuffle(len(groups), func(i, j int) { groups[i], groups[j] = groups[j], groups[i] })
	var out []string
	for _, g := range groups {
		out = append(out, strings.Split(g, "\n")...)
	}
	return out
}
