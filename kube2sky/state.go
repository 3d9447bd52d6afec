package kube2sky

import (
	"hash/maphash"
	"slices"
)

// owned is kube2sky's copy of what it has in etcd, grouped by the object
// that owns each key, so a sync compares one object's records without
// reading etcd. It is not safe for concurrent use; the Registry locks it.
//
// It keeps each key and a digest of its value, not the value: at 100,000
// services (290,000 keys) the JSON values, a string per key kept twice
// through every resync, were most of kube2sky's heap. A plan needs only
// "is etcd's value the one wanted", which the digests answer (see digest).
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
	seed      maphash.Seed // Of every digest: states that compare digests share it.
	keys      map[string]held
	byOwner   map[Owner]*holding
	written   map[string]int64
	highest   int64
	waiting   map[string]map[Owner]bool
	uncertain map[string]Owner
}

// held is one key's entry: who holds it, where in that owner's keys, and
// its value's digest.
type held struct {
	by    *holding
	at    int // Index in by.keys.
	value digest
}

// holding is one owner's keys, in no order.
type holding struct {
	owner Owner
	keys  []string
}

// digest stands for a record value: a 64-bit seeded hash of the value as
// kube2sky would write it (see listedDigest). Two different values share
// one with a probability of 2^-64 per comparison; the cost of one that
// did is a record left unwritten until it changes again.
type digest uint64

// unknownDigest is the digest of a key whose last commit may or may not
// have been applied: digestOf never returns it, so a plan compares it
// unequal to anything desired (and writes that) or, with nothing desired,
// deletes the key (harmless if it is absent).
const unknownDigest digest = 0

func newOwned(n Namer, seed maphash.Seed) *owned {
	return &owned{namer: n, seed: seed, keys: map[string]held{}, byOwner: map[Owner]*holding{},
		written: map[string]int64{}, waiting: map[string]map[Owner]bool{}, uncertain: map[string]Owner{}}
}

// digestOf is the digest of a value exactly as kube2sky writes it.
func (o *owned) digestOf(value string) digest {
	if d := digest(maphash.String(o.seed, value)); d != unknownDigest {
		return d
	}
	return unknownDigest + 1
}

// listedDigest is the digest of a value read from etcd: that of the value
// kube2sky would write for what it serves (see canonical), so another
// writer's field order, spacing or unknown fields (which skydns ignores)
// compare equal to kube2sky's value and are not worth a write and a watch
// event for every skydns.
func (o *owned) listedDigest(inEtcd string) digest { return o.digestOf(canonical(inEtcd)) }

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
	if prev, had := o.keys[key]; had && prev.by.owner != owner {
		return // Another owner's commit settled it since: that one stands.
	}
	o.put(key, owner, unknownDigest)
	o.uncertain[key] = owner
}

// listed adds one key of a list to a fresh state (see reset).
func (o *owned) listed(key, value string) {
	o.set(key, value, o.listedDigest(value))
}

// reset replaces everything with fresh, the state listed (see listed) from
// the owned subtrees at revision rev, except the keys kube2sky wrote after
// rev: for those its own write is newer than the list, so the value it
// put, or the absence it made, stands. Writes at or before rev are in the
// list, and forgotten.
//
// floor is the highest revision kube2sky had seen when it asked for the
// list. A list below it comes from an etcd that went back in time (restored
// from an older snapshot, or wiped): revisions no longer order kube2sky's
// writes against the list, and the writes it remembers may be lost, so the
// list is trusted whole and reset reports restored. Owners waiting for a
// key are forgotten too: every owner is planned again after a reset.
func (o *owned) reset(fresh *owned, rev, floor int64) (restored bool) {
	restored = rev < floor
	fresh.highest = rev
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
			if mine, ok := o.keys[k]; ok {
				fresh.put(k, mine.by.owner, mine.value)
			} else {
				fresh.drop(k) // Deleted after the list.
			}
		}
	}
	*o = *fresh
	return restored
}

// set records key's value (and its digest) and its owner. A key changes
// hands here only when two owners' commits race for it (both planned
// while neither held it): the later commit's owner holds it, and the other
// waits for it.
func (o *owned) set(key, value string, d digest) {
	owner, ok := o.namer.ownerOfKey(key, value)
	if prev, had := o.keys[key]; had && prev.by.owner != owner {
		o.drop(key)
		o.wait(prev.by.owner, key)
	}
	if !ok {
		return
	}
	o.put(key, owner, d)
	delete(o.waiting[key], owner)
	if len(o.waiting[key]) == 0 {
		delete(o.waiting, key)
	}
}

// put makes owner the holder of key, with value d.
func (o *owned) put(key string, owner Owner, d digest) {
	if prev, had := o.keys[key]; had {
		if prev.by.owner == owner {
			prev.value = d
			o.keys[key] = prev
			return
		}
		o.drop(key)
	}
	h := o.byOwner[owner]
	if h == nil {
		h = &holding{owner: owner}
		o.byOwner[owner] = h
	}
	o.keys[key] = held{by: h, at: len(h.keys), value: d}
	h.keys = append(h.keys, key)
}

// drop forgets key, whoever holds it.
func (o *owned) drop(key string) {
	e, had := o.keys[key]
	if !had {
		return
	}
	delete(o.keys, key)
	h := e.by
	last := len(h.keys) - 1
	if e.at != last { // The last key takes the dropped one's place.
		moved := h.keys[last]
		h.keys[e.at] = moved
		m := o.keys[moved]
		m.at = e.at
		o.keys[moved] = m
	}
	h.keys[last] = ""
	h.keys = h.keys[:last]
	if len(h.keys) == 0 {
		delete(o.byOwner, h.owner)
	}
}

func (o *owned) wait(owner Owner, key string) {
	if o.waiting[key] == nil {
		o.waiting[key] = map[Owner]bool{}
	}
	o.waiting[key][owner] = true
}

// plan is what turns owner's records in etcd into desired, less the keys
// another owner holds. Two headless services that select one endpoint IP
// both call for its PTR; the first to hold it keeps it until its own plan
// gives it up, so neither overwrites the other on every sync. owner waits
// for each key it is refused.
func (o *owned) plan(owner Owner, desired Records) Plan {
	claimable := Records{}
	for k, v := range desired {
		if e, held := o.keys[k]; held && e.by.owner != owner {
			o.wait(owner, k)
			continue
		}
		claimable[k] = v
	}
	var current []string
	if h := o.byOwner[owner]; h != nil {
		current = h.keys
	}
	return planChanges(claimable, current, func(k string) digest { return o.keys[k].value }, o.digestOf)
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
		o.set(k, v, o.digestOf(v))
		o.written[k] = rev
		delete(o.uncertain, k)
	}
	var released []Owner
	for _, k := range p.Deletes {
		if o.written[k] > rev {
			continue
		}
		o.drop(k) // Whoever holds it now: etcd deleted it at rev.
		o.written[k] = rev
		delete(o.uncertain, k)
		for w := range o.waiting[k] {
			released = append(released, w)
		}
		delete(o.waiting, k)
	}
	return released
}

// owners are every owner that holds a key.
func (o *owned) owners() []Owner {
	out := make([]Owner, 0, len(o.byOwner))
	for owner := range o.byOwner {
		out = append(out, owner)
	}
	return out
}

// holds reports whether owner holds key, and its value's digest: for tests.
func (o *owned) holds(owner Owner, key string) (digest, bool) {
	e, ok := o.keys[key]
	if !ok || e.by.owner != owner {
		return 0, false
	}
	return e.value, true
}

// ownerKeys are owner's keys, sorted: for tests and logs.
func (o *owned) ownerKeys(owner Owner) []string {
	if h := o.byOwner[owner]; h != nil {
		return slices.Sorted(slices.Values(h.keys))
	}
	return nil
}
