package kube2sky

import (
	"slices"

	"github.com/skypod/skypod/skydns/msg"
)

// Plan is what one owner's records in etcd need to become what its objects
// call for: applied as one transaction, puts first.
type Plan struct {
	Puts    Records
	Deletes []string // Sorted.
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Puts) == 0 && len(p.Deletes) == 0 }

// planChanges diffs desired against current, the keys the owner holds in
// etcd, whose values' digests held gives. Keys current holds and desired
// does not are deleted; keys desired holds with a value whose digest (by
// digestOf) is not etcd's, or not in current, are put.
func planChanges(desired Records, current []string, held func(key string) digest, digestOf func(string) digest) Plan {
	p := Plan{Puts: Records{}}
	for k, v := range desired {
		if d := held(k); d == unknownDigest || d != digestOf(v) {
			p.Puts[k] = v // Absent keys have the unknown digest too.
		}
	}
	for _, k := range current {
		if _, ok := desired[k]; !ok {
			p.Deletes = append(p.Deletes, k)
		}
	}
	slices.Sort(p.Deletes)
	return p
}

// canonical is the value kube2sky would write for inEtcd, a value read
// from etcd: inEtcd decoded as skydns decodes it and encoded as kube2sky
// encodes, or inEtcd itself when skydns could not read it. Every value
// kube2sky writes is its own canonical value.
func canonical(inEtcd string) string {
	if c, err := reencode("", inEtcd); err == nil {
		return c
	}
	return inEtcd
}

// reencode is value decoded as skydns decodes the value at key and encoded
// again as kube2sky encodes, or why skydns could not read it.
func reencode(key, value string) (string, error) {
	s, err := msg.Unmarshal(key, []byte(value))
	if err != nil {
		return "", err
	}
	b, err := msg.Marshal(s)
	return string(b), err
}
