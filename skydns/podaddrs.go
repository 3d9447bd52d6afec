package skydns

import (
	"net/netip"
	"strings"
)

// podAddrs is a view of the pod records kept beside the tree, for
// --autopath: which namespaces each pod IP has a record in. kube2sky
// writes a pod's record at <hash>.<a-b-c-d>.<ns>.pod.<domain>, its host
// the pod's IP; the view maps that IP to "<ns>.pod.<domain>." with a count
// of the records naming it. A source address then finds its namespace in
// one probe, where a lookup of /pod/<ns>/<a-b-c-d> would cost one per
// namespace. The tree keeps it in step wherever a value is set or
// removed, under the index's lock.
type podAddrs map[netip.Addr][]podZone

// podZone is one namespace's pod zone and how many records in it name
// the address (hostNetwork pods share the node's).
type podZone struct {
	zone string // "<ns>.pod.<domain>.", a part of the record's node name.
	n    int
}

// podRecordOf is the address and pod zone of r, a record at name, when it
// is a pod record in kube2sky's layout.
func podRecordOf(name string, r *record) (netip.Addr, string, bool) {
	if r == nil {
		return netip.Addr{}, "", false
	}
	zone, ok := cutLabels(name, 2)
	if !ok {
		return netip.Addr{}, "", false
	}
	ns, rest, ok := strings.Cut(zone, ".")
	if !ok || ns == "" || !strings.HasPrefix(rest, "pod.") {
		return netip.Addr{}, "", false
	}
	ip, ok := netip.AddrFromSlice(r.HostIP())
	if !ok {
		return netip.Addr{}, "", false
	}
	return ip.Unmap(), zone, true
}

// cutLabels is name without its first n labels.
func cutLabels(name string, n int) (string, bool) {
	for range n {
		_, rest, ok := strings.Cut(name, ".")
		if !ok || rest == "" {
			return "", false
		}
		name = rest
	}
	return name, true
}

// note counts r, the value at name, in (delta 1) or out (delta -1).
func (p podAddrs) note(name string, r *record, delta int) {
	ip, zone, ok := podRecordOf(name, r)
	if !ok {
		return
	}
	zones := p[ip]
	for i := range zones {
		if zones[i].zone != zone {
			continue
		}
		zones[i].n += delta
		if zones[i].n <= 0 {
			zones = append(zones[:i], zones[i+1:]...)
		}
		p.store(ip, zones)
		return
	}
	if delta > 0 {
		p.store(ip, append(zones, podZone{zone: zone, n: delta}))
	}
}

func (p podAddrs) store(ip netip.Addr, zones []podZone) {
	if len(zones) == 0 {
		delete(p, ip)
		return
	}
	p[ip] = zones
}

// namespace is the one namespace whose pod zone under podSuffix
// ("pod.<domain>.") names ip; false when none does or several do.
func (p podAddrs) namespace(ip netip.Addr, podSuffix string) (string, bool) {
	ns := ""
	for _, z := range p[ip] {
		name, rest, _ := strings.Cut(z.zone, ".")
		if rest != podSuffix {
			continue
		}
		if ns != "" {
			return "", false // Pods of several namespaces: hostNetwork.
		}
		ns = name
	}
	return ns, ns != ""
}

// TrackPods makes the index keep the view of pod addresses (podAddrs)
// that --autopath reads. Called before the first list: a tree made since
// keeps it from its first record.
func (ix *Index) TrackPods() { ix.trackPods.Store(true) }

// PodNamespace is the namespace of the one pod zone under podSuffix
// ("pod.<domain>.") with a record for ip; false for an unknown address,
// one shared by pods of several namespaces, or an index not tracking
// pods.
func (ix *Index) PodNamespace(ip netip.Addr, podSuffix string) (string, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.tree == nil || ix.tree.pods == nil {
		return "", false
	}
	return ix.tree.pods.namespace(ip.Unmap(), podSuffix)
}
