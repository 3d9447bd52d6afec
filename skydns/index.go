package skydns

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/skypod/skypod/skydns/msg"
)

// Lookup errors. errNameNotFound becomes NXDOMAIN; errNotLoaded becomes
// SERVFAIL, because before the first list we cannot know that a name does
// not exist (the legacy server answered NXDOMAIN or NODATA there).
var (
	errNameNotFound = errors.New("name not found")
	errNotLoaded    = errors.New("records not loaded from etcd yet")
)

// node is one key segment. A node can hold a value and children at once:
// etcd v3 allows "/a" and "/a/b" side by side, where v2 did not.
type node struct {
	children map[string]*node
	kids     []*node // The same children, for walks: a slice iterates far faster than a map.
	value    *msg.Service
	seg      string // This node's own key segment.
	name     string // The DNS name of this node, lowercase, with the root dot.

	// changed holds the number of the last change at or below this node:
	// a put or delete whose path runs through it, its own pruning, or the
	// whole tree being replaced. A cell of its own, so that a Version
	// holds on to 8 bytes, not to the node and everything below it.
	changed *atomic.Uint64
}

func newNode(seg, name string, stamp uint64) *node {
	n := &node{seg: seg, name: name, changed: new(atomic.Uint64)}
	n.changed.Store(stamp)
	return n
}

// Version identifies the records a lookup read: it stays current until a
// change lands at or below the name looked up or, for a name that does not
// exist, at or below its deepest existing ancestor (creating the name
// passes through there). The zero Version is never current.
type Version struct {
	cell  *atomic.Uint64
	stamp uint64
}

// Current reports whether nothing has changed since v was taken.
func (v Version) Current() bool { return v.cell != nil && v.cell.Load() == v.stamp }

func (n *node) version() Version { return Version{cell: n.changed, stamp: n.changed.Load()} }

// tree is the whole prefix as of one etcd revision. byName finds any node
// by its DNS name in one probe; the nested maps serve directory walks and
// wildcards. Both are kept in step by put and remove.
type tree struct {
	root   node
	byName map[string]*node
	count  int // Number of values.
}

func newTree(stamp uint64) *tree {
	return &tree{root: *newNode("", "", stamp), byName: make(map[string]*node)}
}

// Index holds the records under the prefix in memory. Reads take a read
// lock for the length of one walk; the watcher applies changes under the
// write lock, and a re-list swaps in a whole new tree at once.
type Index struct {
	prefix string

	mu     sync.RWMutex
	tree   *tree // nil until the first list has loaded.
	loaded atomic.Bool

	generation atomic.Uint64 // Bumped on every change, under mu; also the stamp of Versions.
}

// NewIndex returns an empty, not yet loaded index of keys under /prefix/.
func NewIndex(prefix string) *Index {
	return &Index{prefix: prefix}
}

// Loaded reports whether a full list has been loaded.
func (ix *Index) Loaded() bool { return ix.loaded.Load() }

// Len is the number of records held.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.tree == nil {
		return 0
	}
	return ix.tree.count
}

// Generation changes whenever the content does.
func (ix *Index) Generation() uint64 { return ix.generation.Load() }

// Replace swaps in a freshly listed set of records. Every node of the old
// tree is stamped, so no Version taken from it stays current.
func (ix *Index) Replace(records []msg.Service) {
	// Built outside the lock, with stamps of 0: a Version needs only that
	// its cell changes with every later change, which stamps from the
	// generation counter (never 0) guarantee.
	t := newTree(0)
	for i := range records {
		if segs, ok := msg.KeySegments(lowerASCII(records[i].Key), ix.prefix); ok {
			t.put(segs, &records[i], 0)
		}
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	stamp := ix.generation.Add(1)
	if ix.tree != nil {
		ix.tree.root.retire(stamp)
	}
	ix.tree = t
	ix.loaded.Store(true)
}

// retire stamps n and every node below it.
func (n *node) retire(stamp uint64) {
	n.changed.Store(stamp)
	for _, child := range n.kids {
		child.retire(stamp)
	}
}

// Put adds or replaces the record at s.Key.
func (ix *Index) Put(s msg.Service) {
	segs, ok := msg.KeySegments(lowerASCII(s.Key), ix.prefix)
	if !ok {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	stamp := ix.generation.Add(1)
	if ix.tree != nil {
		ix.tree.put(segs, &s, stamp)
	}
}

// Delete removes the record at key, if any.
func (ix *Index) Delete(key string) {
	segs, ok := msg.KeySegments(lowerASCII(key), ix.prefix)
	if !ok {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	stamp := ix.generation.Add(1)
	if ix.tree != nil && ix.tree.remove(&ix.tree.root, segs, stamp) {
		ix.tree.count--
	}
}

// put stores s at segs, stamping every node on the way.
func (t *tree) put(segs []string, s *msg.Service, stamp uint64) {
	n := &t.root
	n.changed.Store(stamp)
	for _, seg := range segs {
		child := n.children[seg]
		if child == nil {
			if n.children == nil {
				n.children = make(map[string]*node, 1)
			}
			child = newNode(seg, seg+"."+n.name, stamp)
			n.children[seg] = child
			n.kids = append(n.kids, child)
			t.byName[child.name] = child
		}
		child.changed.Store(stamp)
		n = child
	}
	if n.value == nil {
		t.count++
	}
	n.value = s
}

// remove deletes the value at segs below n, pruning nodes left empty and
// stamping every node on the way, and reports whether a value was there.
func (t *tree) remove(n *node, segs []string, stamp uint64) bool {
	n.changed.Store(stamp)
	if len(segs) == 0 {
		had := n.value != nil
		n.value = nil
		return had
	}
	child := n.children[segs[0]]
	if child == nil {
		return false
	}
	had := t.remove(child, segs[1:], stamp)
	if child.value == nil && len(child.children) == 0 {
		delete(n.children, segs[0])
		delete(t.byName, child.name)
		n.kids = slices.DeleteFunc(n.kids, func(k *node) bool { return k == child })
	}
	return had
}

// Records returns the records at name: the value of a leaf, or every record
// below a directory. Labels "*" and "any" match any label. With exact, a
// directory yields nothing (SkyDNS's CNAME lookup).
func (ix *Index) Records(name string, exact bool) ([]*msg.Service, error) {
	sx, _, err := ix.VersionedRecords(name, exact, nil)
	return sx, err
}

// VersionedRecords is Records with the Version of what it read, charging
// every node it visits to b (nil: no limit). A wildcard name gets the zero
// Version: its answer spans a directory's siblings. A walk that passes b's
// limit stops there and fails with errOverBudget.
func (ix *Index) VersionedRecords(name string, exact bool, b *budget) ([]*msg.Service, Version, error) {
	if hasWildcard(name) {
		sx, err := ix.recordsAt(msg.Labels(name), exact, b)
		return sx, Version{}, err
	}
	// The common case is one probe of the name map: this is the hot path
	// of every query.
	name = strings.ToLower(name) // Free when already lowercase.
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.tree == nil {
		return nil, Version{}, errNotLoaded
	}
	if !b.visit() {
		return nil, Version{}, errOverBudget
	}
	n := ix.tree.byName[name]
	if n == nil {
		if name != "." {
			return nil, ix.tree.deepestOnPath(name).version(), errNameNotFound
		}
		n = &ix.tree.root
	}
	sx := n.answer(exact, b)
	if err := b.exceeded(); err != nil {
		return nil, Version{}, err
	}
	return sx, n.version(), nil
}

// deepestOnPath is the deepest existing node on the path a put of a record
// at name would take: whatever creates name stamps it.
func (t *tree) deepestOnPath(name string) *node {
	labels := msg.Labels(name)
	n := &t.root
	for i := len(labels) - 1; i >= 0; i-- {
		child := n.children[labels[i]]
		if child == nil {
			break
		}
		n = child
	}
	return n
}

// hasWildcard reports whether any label of name is "*" or "any", without
// splitting the name.
func hasWildcard(name string) bool {
	if lower := strings.ToLower(name); strings.IndexByte(lower, '*') < 0 && !strings.Contains(lower, "any") {
		return false // The common case, decided without looking at labels.
	}
	for start := 0; start < len(name); {
		end := strings.IndexByte(name[start:], '.')
		if end < 0 {
			end = len(name)
		} else {
			end += start
		}
		if msg.IsWildcard(strings.ToLower(name[start:end])) {
			return true
		}
		start = end + 1
	}
	return false
}

// recordsAt looks up the reversed-label path of labels (in name order).
func (ix *Index) recordsAt(labels []string, exact bool, b *budget) ([]*msg.Service, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.tree == nil {
		return nil, errNotLoaded
	}
	if !b.visit() {
		return nil, errOverBudget
	}
	segs := make([]string, len(labels))
	for i, l := range labels {
		segs[len(labels)-1-i] = l
	}
	sx, err := ix.tree.root.lookup(segs, exact, b)
	if err == nil {
		err = b.exceeded()
	}
	if err != nil {
		return nil, err
	}
	return sx, nil
}

// lookup answers the path segs below n, the first wildcard segment, if
// any, starting a walk.
func (n *node) lookup(segs []string, exact bool, b *budget) ([]*msg.Service, error) {
	for i, seg := range segs {
		if msg.IsWildcard(seg) {
			return n.wildcard(segs, i, b)
		}
	}
	n = n.find(segs)
	if n == nil {
		return nil, errNameNotFound
	}
	return n.answer(exact, b), nil
}

// answer is what a lookup that ends at n returns: the value of a leaf, or
// everything below a directory (nothing for an exact lookup).
func (n *node) answer(exact bool, b *budget) []*msg.Service {
	if len(n.children) == 0 || exact {
		if n.value == nil {
			return nil
		}
		return []*msg.Service{n.value}
	}
	return n.collect(nil, b)
}

func (n *node) find(segs []string) *node {
	for _, seg := range segs {
		n = n.children[seg]
		if n == nil {
			return nil
		}
	}
	return n
}

// collect appends the value of n and of every node below it, skipping
// children whose segment starts with "_". Those were hidden nodes in the
// etcd v2 API, which a recursive read never returned: kube2sky's SRV leaves
// live under such segments, and clients depend on a service's A query not
// seeing them (legacy-behaviour.md §2.5). Each node visited is charged to
// b; past its limit the walk stops.
func (n *node) collect(out []*msg.Service, b *budget) []*msg.Service {
	if n.value != nil {
		out = append(out, n.value)
	}
	for _, child := range n.kids {
		if isHidden(child.seg) {
			continue
		}
		if !b.visit() {
			return out
		}
		out = child.collect(out, b)
	}
	return out
}

func isHidden(seg string) bool { return seg != "" && seg[0] == '_' }

// wildcard reads the directory above the first wildcard segment and keeps
// the leaves whose segments match the query's position by position. A leaf
// shorter than the query does not match; a longer one does (SkyDNS's
// loopNodes).
func (n *node) wildcard(segs []string, first int, b *budget) ([]*msg.Service, error) {
	dir := n.find(segs[:first])
	if dir == nil {
		return nil, errNameNotFound
	}
	var out []*msg.Service
	dir.matchBelow(segs[first:], &out, b)
	return out, nil
}

// matchBelow walks only where pattern can match: every child for a
// wildcard segment, the one child of that name for any other (a map probe,
// not a scan, so "web.any.svc" costs a probe per namespace).
func (n *node) matchBelow(pattern []string, out *[]*msg.Service, b *budget) {
	if len(pattern) == 0 {
		*out = n.collect(*out, b)
		return
	}
	if !msg.IsWildcard(pattern[0]) {
		if child := n.children[pattern[0]]; child != nil && !isHidden(child.seg) && b.visit() {
			child.matchBelow(pattern[1:], out, b)
		}
		return
	}
	for _, child := range n.kids {
		if isHidden(child.seg) {
			continue
		}
		if !b.visit() {
			return
		}
		child.matchBelow(pattern[1:], out, b)
	}
}
