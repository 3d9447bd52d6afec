package kube2sky

// owned is kube2sky's copy of what it has in etcd, grouped by the object
// that owns each key, so a sync compares one object's records without
// reading etcd. It is not safe for concurrent use; the Registry locks it.
//
// written remembers the etcd revision of kube2sky's own last put or delete
// of each key, so that a reset from a list taken at an older revision keeps
// what was written after the list (see reset).
type owned struct {
	namer   Namer
	values  Records
	byOwner map[Owner]map[string]bool
	written map[string]int64
}

func newOwned(n Namer) *owned {
	return &owned{namer: n, values: Records{}, byOwner: map[Owner]map[string]bool{}, written: map[string]int64{}}
}

// reset replaces everything with a list of the owned subtrees taken at
// revision rev, except the keys kube2sky wrote after rev: for those its own
// write is newer than the list, so the value it put, or the absence it
// made, stands. Writes at or before rev are in the list, and forgotten.
func (o *owned) reset(listed Records, rev int64) {
	fresh := newOwned(o.namer)
	for k, v := range listed {
		if o.written[k] <= rev {
			fresh.set(k, v)
		}
	}
	for k, wrev := range o.written {
		if wrev <= rev {
			continue
		}
		fresh.written[k] = wrev
		if v, ok := o.values[k]; ok {
			fresh.set(k, v)
		}
	}
	*o = *fresh
}

func (o *owned) set(key, value string) {
	owner, ok := o.namer.ownerOfKey(key, value)
	if old, had := o.values[key]; had {
		// A reverse record can change hands when an IP moves between
		// services; the old owner must not delete it later.
		if prev, _ := o.namer.ownerOfKey(key, old); prev != owner {
			o.remove(prev, key)
		}
	}
	if !ok {
		return
	}
	o.values[key] = value
	if o.byOwner[owner] == nil {
		o.byOwner[owner] = map[string]bool{}
	}
	o.byOwner[owner][key] = true
}

func (o *owned) remove(owner Owner, key string) {
	delete(o.values, key)
	delete(o.byOwner[owner], key)
	if len(o.byOwner[owner]) == 0 {
		delete(o.byOwner, owner)
	}
}

// current is what the plan compares owner's desired records with: every
// key owner has, and each desired key that is already in etcd.
func (o *owned) current(owner Owner, desired Records) Records {
	out := Records{}
	for k := range o.byOwner[owner] {
		out[k] = o.values[k]
	}
	for k := range desired {
		if v, ok := o.values[k]; ok {
			out[k] = v
		}
	}
	return out
}

// applied records a plan committed at revision rev.
func (o *owned) applied(owner Owner, p Plan, rev int64) {
	for k, v := range p.Puts {
		o.set(k, v)
		o.written[k] = rev
	}
	for _, k := range p.Deletes {
		o.remove(owner, k)
		o.written[k] = rev
	}
}

func (o *owned) owners() []Owner {
	out := make([]Owner, 0, len(o.byOwner))
	for owner := range o.byOwner {
		out = append(out, owner)
	}
	return out
}
