package kube2sky

import (
	"maps"
	"slices"
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
// holds with another value, or not in current, are put.
func planChanges(desired, current Records) Plan {
	p := Plan{Puts: Records{}}
	for k, v := range desired {
		if old, ok := current[k]; !ok || old != v {
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
