package kube2sky

import (
	"maps"
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
// etcd. Keys current holds and desired does not are deleted; keys desired
// holds with a value that serves something else (see sameRecord), or not in
// current, are put.
func planChanges(desired, current Records) Plan {
	p := Plan{Puts: Records{}}
	for k, v := range desired {
		if old, ok := current[k]; !ok || !sameRecord(old, v) {
			p.Puts[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(current)) {
		if _, ok := desired[k]; !ok {
			p.Deletes = append(p.Deletes, k)
		}
	}
	return p
}

// sameRecord reports whether inEtcd, a value read from etcd, serves what
// want, a value kube2sky writes, does. Equal bytes are the common case;
// otherwise inEtcd is decoded as skydns decodes it and encoded as kube2sky
// would, so another writer's field order, spacing or unknown fields (which
// skydns ignores) are not worth a write and a watch event for every skydns.
func sameRecord(inEtcd, want string) bool {
	if inEtcd == want {
		return true
	}
	s, err := msg.Unmarshal("", []byte(inEtcd))
	if err != nil {
		return false
	}
	b, err := msg.Marshal(s)
	return err == nil && string(b) == want
}
