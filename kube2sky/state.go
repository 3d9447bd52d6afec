package kube2sky

import (
	"strings"

	"github.com/skypod/skypod/skydns/msg"
)

// owned is kube2sky's copy of what it has in etcd, grouped by the object
// that owns each key, so a sync compares one object's records without
// reading etcd. A resync rebuilds it from a fresh list.
type owned struct {
	namer   Namer
	values  Records
	byOwner map[string]map[string]bool
}

func newOwned(n Namer) *owned {
	return &owned{namer: n, values: Records{}, byOwner: map[string]map[string]bool{}}
}

// Owner IDs, also the work queue's keys.
func serviceOwner(ns, name string) string { return "svc/" + ns + "/" + name }
func podOwner(ns, ip string) string       { return "pod/" + ns + "/" + dashedIP(ip) }

const dnsVersionOwner = "dns-version"

// ownerOf says which object a key belongs to, or "" for keys kube2sky does
// not own (anything outside its subtrees, and reverse records that point
// somewhere other than a service).
func (o *owned) ownerOf(key, value string) string {
	n := o.namer
	if rest, ok := strings.CutPrefix(key, n.ServicesKey()); ok {
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) >= 2 {
			return serviceOwner(parts[0], parts[1])
		}
		return ""
	}
	if rest, ok := strings.CutPrefix(key, n.PodsKey()); ok {
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) >= 2 {
			return "pod/" + parts[0] + "/" + parts[1]
		}
		return ""
	}
	if strings.HasPrefix(key, n.ReverseKey()) {
		return o.reverseOwner(value)
	}
	if _, ok := n.DNSVersion()[key]; ok {
		return dnsVersionOwner
	}
	return ""
}

// reverseOwner is the service a PTR value points into: <name>.<ns>.svc.D or
// <hostname>.<name>.<ns>.svc.D.
func (o *owned) reverseOwner(value string) string {
	s, err := msg.Unmarshal("", []byte(value))
	if err != nil {
		return ""
	}
	rest, ok := strings.CutSuffix(strings.ToLower(s.Host), ".svc."+o.namer.Domain)
	if !ok {
		return ""
	}
	labels := strings.Split(rest, ".")
	if len(labels) < 2 {
		return ""
	}
	return serviceOwner(labels[len(labels)-1], labels[len(labels)-2])
}

// reset replaces everything with a fresh list of the owned subtrees.
func (o *owned) reset(listed Records) {
	o.values = Records{}
	o.byOwner = map[string]map[string]bool{}
	for k, v := range listed {
		o.set(k, v)
	}
}

func (o *owned) set(key, value string) {
	owner := o.ownerOf(key, value)
	if old, ok := o.values[key]; ok {
		// A reverse record can change hands when an IP moves between
		// services; the old owner must not delete it later.
		if prev := o.ownerOf(key, old); prev != owner {
			o.remove(prev, key)
		}
	}
	if owner == "" {
		return
	}
	o.values[key] = value
	if o.byOwner[owner] == nil {
		o.byOwner[owner] = map[string]bool{}
	}
	o.byOwner[owner][key] = true
}

func (o *owned) remove(owner, key string) {
	delete(o.values, key)
	delete(o.byOwner[owner], key)
	if len(o.byOwner[owner]) == 0 {
		delete(o.byOwner, owner)
	}
}

// diff is what turns owner's keys in etcd into desired.
func (o *owned) diff(owner string, desired Records) (puts Records, deletes []string) {
	puts = Records{}
	for k, v := range desired {
		if o.values[k] != v {
			puts[k] = v
		}
	}
	for k := range o.byOwner[owner] {
		if _, ok := desired[k]; !ok {
			deletes = append(deletes, k)
		}
	}
	return puts, deletes
}

// applied records a successful Apply.
func (o *owned) applied(owner string, puts Records, deletes []string) {
	for k, v := range puts {
		o.set(k, v)
	}
	for _, k := range deletes {
		o.remove(owner, k)
	}
}

func (o *owned) owners() []string {
	out := make([]string, 0, len(o.byOwner))
	for owner := range o.byOwner {
		out = append(out, owner)
	}
	return out
}
