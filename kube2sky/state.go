package kube2sky

// owned is kube2sky's copy of what it has in etcd, grouped by the object
// that owns each key, so a sync compares one object's records without
// reading etcd. It is not safe for concurrent use; the Registry locks it.
//
// written remembers the etcd revision of kube2sky's own last put or delete
// of each key, so that a reset from a list taken at an older revision keeps
// what was written after the list (see reset); highest is the highest
// revision kube2sky has seen, written or listed, so that a list from an etcd
// that went back in time is recognised.
//
// waiting remembers, by key, the owners refused a key another owner holds
// (see claimable), so that they are synced again when the holder gives it up.
//
// uncertain holds the keys of commits whose outcome is unknown (see
// maybeApplied), with the owner whose plan named them.
type owned struct {
	namer     Namer
	values    Records
	holder    map[string]Owner // Of each key in values: found once, when set.
	byOwner   map[Owner]map[string]bool
	written   map[string]int64
	highest   int64
	waiting   map[string]map[Owner]bool
	uncertain map[string]Owner
}

func newOwned(n Namer) *owned {
	return &owned{namer: n, values: Records{}, holder: map[string]Owner{}, byOwner: map[Owner]map[string]bool{},
		written: map[string]int64{}, waiting: map[string]map[Owner]bool{}, uncertain: map[string]Owner{}}
}

// unknownValue stands for the value of a key whose last commit may or may
// not have been applied: no record encodes to it, so a plan compares it
// unequal to anything desired (and writes that) or, with nothing desired,
// deletes the key (harmless if it is absent).
const unknownValue = ""

// maybeApplied records a plan whose commit failed in a way that does not
// say whether etcd applied it (a timeout, etcd unreachable): etcd may still
// apply it later, even after kube2sky's next list of etcd. Every key it
// named is held by owner with an unknown value until a later commit of
// owner's settles it, and survives resets, so the owner's next plan
// rewrites or deletes it, and a resync plans the owner even if its object
// is gone by then.
func (o *owned) maybeApplied(owner Owner, p Plan) {
	for k := range p.Puts {
		o.setUnknown(owner, k)
	}
	for _, k := range p.Deletes {
		o.setUnknown(owner, k)
	}
}

func (o *owned) setUnknown(owner Owner, key string) {
	if prev, had := o.holder[key]; had && prev != owner {
		return // Another owner's commit settled it since: that one stands.
	}
	o.values[key] = unknownValue
	o.holder[key] = owner
	if o.byOwner[owner] == nil {
		o.byOwner[owner] = map[string]bool{}
	}
	o.byOwner[owner][key] = true
	o.uncertain[key] = owner
}

// reset replaces everything with a list of the owned subtrees taken at
// revision rev, except the keys kube2sky wrote after rev: for those its own
// write is newer than the list, so the value it put, or the absence it
// made, stands. Writes at or before rev are in the list, and forgotten.
//
// floor is the highest revision kube2sky had seen when it asked for the
// list. A list below it comes from an etcd that went back in time (restored
// from an older snapshot, or wiped): revisions no longer order kube2sky's
// writes against the list, and the writes it remembers may be lost, so the
// list is trusted whole and reset reports restored. Owners waiting for a
// key are forgotten too: every owner is planned again after a reset.
func (o *owned) reset(listed Records, rev, floor int64) (restored bool) {
	restored = rev < floor
	fresh := newOwned(o.namer)
	fresh.highest = rev
	for k, v := range listed {
		if restored || o.written[k] <= rev {
			fresh.set(k, v)
		}
	}
	for k, owner := range o.uncertain {
		fresh.setUnknown(owner, k) // Whatever the list says, a late commit may change it.
	}
	if !restored {
		fresh.highest = max(rev, o.highest)
		for k, wrev := range o.written {
			if wrev <= rev {
				continue
			}
			fresh.written[k] = wrev
			if v, ok := o.values[k]; ok {
				fresh.set(k, v)
			}
		}
	}
	*o = *fresh
	return restored
}

// set records key's value and its owner. A key changes hands here only
// when two owners' commits race for it (both planned while neither held
// it): the later commit's owner holds it, and the other waits for it.
func (o *owned) set(key, value string) {
	owner, ok := o.namer.ownerOfKey(key, value)
	if prev, had := o.holder[key]; had && prev != owner {
		o.remove(prev, key)
		o.wait(prev, key)
	}
	if !ok {
		return
	}
	o.values[key] = value
	o.holder[key] = owner
	if o.byOwner[owner] == nil {
		o.byOwner[owner] = map[string]bool{}
	}
	o.byOwner[owner][key] = true
	delete(o.waiting[key], owner)
	if len(o.waiting[key]) == 0 {
		delete(o.waiting, key)
	}
}

func (o *owned) remove(owner Owner, key string) {
	delete(o.values, key)
	delete(o.holder, key)
	delete(o.byOwner[owner], key)
	if len(o.byOwner[owner]) == 0 {
		delete(o.byOwner, owner)
	}
}

func (o *owned) wait(owner Owner, key string) {
	if o.waiting[key] == nil {
		o.waiting[key] = map[Owner]bool{}
	}
	o.waiting[key][owner] = true
}

// claimable is desired without the keys another owner holds. Two headless
// services that select one endpoint IP both call for its PTR; the first to
// hold it keeps it until its own plan gives it up, so neither overwrites
// the other on every sync. owner waits for each key it is refused.
func (o *owned) claimable(owner Owner, desired Records) Records {
	out := Records{}
	for k, v := range desired {
		if holder, held := o.holder[k]; held && holder != owner {
			o.wait(owner, k)
			continue
		}
		out[k] = v
	}
	return out
}

// current is every key owner holds, what the plan compares its claimable
// records with.
func (o *owned) current(owner Owner) Records {
	out := Records{}
	for k := range o.byOwner[owner] {
		out[k] = o.values[k]
	}
	return out
}

// applied records a plan committed at revision rev, and returns the owners
// that waited for a key it deleted. A key another commit wrote at a later
// revision (two owners racing for a PTR) keeps that commit's result.
func (o *owned) applied(owner Owner, p Plan, rev int64) []Owner {
	o.highest = max(o.highest, rev)
	for k, v := range p.Puts {
		if o.written[k] > rev {
			o.wait(owner, k)
			continue
		}
		o.set(k, v)
		o.written[k] = rev
		delete(o.uncertain, k)
	}
	var released []Owner
	for _, k := range p.Deletes {
		if o.written[k] > rev {
			continue
		}
		o.remove(owner, k)
		o.written[k] = rev
		delete(o.uncertain, k)
		for w := range o.waiting[k] {
			released = append(released, w)
		}
		delete(o.waiting, k)
	}
	return released
}

func (o *owned) owners() []Owner {
	out := make([]Owner, 0, len(o.byOwner))
	for owner := range o.byOwner {
		out = append(out, owner)
	}
	return out
}
