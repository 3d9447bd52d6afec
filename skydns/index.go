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
//
// Nodes are what the index is made of (about 1.4 per record in kube2sky's
// layout), so each is kept small: its segment is the first label of its
// name rather than a string of its own, and its children are one slice
// sorted by segment, searched by bisection, rather than a slice to walk
// and a map to probe (most nodes have one or two children, and an empty
// Go map alone is larger than the node; a lookup by name does not come
// this way but through the tree's byName map).
type node struct {
	kids  []*node // Sorted by segment.
	value *record
	rev   int64  // The etcd revision value was written at; 0 if unknown. Fills the 64-byte size class.
	name  string // The DNS name of this node, lowercase, with the root dot; "" at the root.

	// changed holds the number of the last change at or below this node:
	// a put or delete whose path runs through it, its own pruning, or the
	// whole tree being replaced. A cell of its own, so that a Version
	// holds on to 8 bytes, not to the node and everything below it.
	changed *atomic.Uint64
}

func newNode(name string, stamp uint64) *node {
	n := &node{name: name, changed: new(atomic.Uint64)}
	n.changed.Store(stamp)
	return n
}

// seg is the node's own key segment: the first label of its name.
func (n *node) seg() string {
	if i := strings.IndexByte(n.name, '.'); i >= 0 {
		return n.name[:i]
	}
	return n.name
}

// search returns where seg is or would go among n's children.
func (n *node) search(seg string) (int, bool) {
	return slices.BinarySearchFunc(n.kids, seg, func(k *node, seg string) int { return strings.Compare(k.seg(), seg) })
}

// child is the child at seg, or nil.
func (n *node) child(seg string) *node {
	if i, ok := n.search(seg); ok {
		return n.kids[i]
	}
	return nil
}

// addChild links c, a new child at seg, below n.
func (n *node) addChild(seg string, c *node) {
	i, _ := n.search(seg)
	n.kids = slices.Insert(n.kids, i, c)
}

// removeChild unlinks the child at seg.
func (n *node) removeChild(seg string) {
	if i, ok := n.search(seg); ok {
		n.kids = slices.Delete(n.kids, i, i+1)
	}
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
	return &tree{root: *newNode("", stamp), byName: make(map[string]*node)}
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

// Replace swaps in a freshly listed set of records.
func (ix *Index) Replace(records []msg.Service) {
	l := ix.NewLoad()
	for _, s := range records {
		l.Add(s, 0)
	}
	l.Commit()
}

// Load is a whole new tree being built, record by record, while the
// current one keeps answering; Commit swaps it in. A list of etcd adds
// each page as it comes, so the records never all sit in a response (or a
// slice) beside the two trees. A relist shares with the current tree what
// has not changed: every name, and each record written at the same
// revision (Keep), so the new tree costs its nodes and little more.
type Load struct {
	ix    *Index
	t     *tree
	old   *tree     // The tree answering when the load began; nil before the first.
	fresh []*record // Records parsed for this load, not shared: Commit interns their hosts.
}

// NewLoad starts a new tree for ix. Its nodes are stamped 0: a Version
// needs only that its cell changes with every later change, which stamps
// from the generation counter (never 0) guarantee.
func (ix *Index) NewLoad() *Load {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return &Load{ix: ix, t: newTree(0), old: ix.tree}
}

// Add puts s, written at revision rev (0: unknown), into the new tree; a
// later Add at the same key replaces it.
func (l *Load) Add(s msg.Service, rev int64) {
	segs, ok := msg.KeySegments(lowerASCII(s.Key), l.ix.prefix)
	if !ok {
		return
	}
	l.ix.mu.RLock() // The old tree is read for its names.
	defer l.ix.mu.RUnlock()
	n := l.t.path(segs, 0, l.oldRoot())
	r := newRecord(&s, n.name)
	l.t.set(n, r, rev)
	l.fresh = append(l.fresh, r)
}

// Keep puts into the new tree the record the current tree holds at key
// if it was written at rev, instead of parsing the value again, and
// reports whether it did. The record is shared, not copied: records are
// never changed once an index holds them.
func (l *Load) Keep(key string, rev int64) bool {
	lower := lowerASCII(key)
	segs, ok := msg.KeySegments(lower, l.ix.prefix)
	if !ok || rev == 0 || l.old == nil {
		return false
	}
	l.ix.mu.RLock()
	defer l.ix.mu.RUnlock()
	o := l.old.root.find(segs)
	// The key check tells apart keys that differ only in case, which
	// share a node: a lowercase one's record keeps no key (see newRecord).
	if o == nil || o.value == nil || o.rev != rev || (o.value.key() != key && (o.value.key() != "" || lower != key)) {
		return false
	}
	l.t.set(l.t.path(segs, 0, l.oldRoot()), o.value, rev)
	return true
}

func (l *Load) oldRoot() *node {
	if l.old == nil {
		return nil
	}
	return &l.old.root
}

// Commit swaps the new tree in. Every node of the old tree is stamped, so
// no Version taken from it stays current.
func (l *Load) Commit() {
	for _, s := range l.fresh {
		l.t.internHost(s)
	}
	ix := l.ix
	ix.mu.Lock()
	defer ix.mu.Unlock()
	stamp := ix.generation.Add(1)
	if ix.tree != nil {
		ix.tree.root.retire(stamp)
	}
	ix.tree = l.t
	*l = Load{}
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
func (ix *Index) Put(s msg.Service) { ix.PutAt(s, 0) }

// PutAt adds or replaces the record at s.Key, written at revision rev.
func (ix *Index) PutAt(s msg.Service, rev int64) {
	segs, ok := msg.KeySegments(lowerASCII(s.Key), ix.prefix)
	if !ok {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	stamp := ix.generation.Add(1)
	if ix.tree != nil {
		n := ix.tree.path(segs, stamp, nil)
		r := newRecord(&s, n.name)
		ix.tree.set(n, r, rev)
		ix.tree.internHost(r)
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

// path returns the node at segs, creating what is missing and stamping
// every node on the way. A new node takes its name from old's node at the
// same place, if any, rather than making the same string again.
func (t *tree) path(segs []string, stamp uint64, old *node) *node {
	n := &t.root
	n.changed.Store(stamp)
	for _, seg := range segs {
		if old != nil {
			old = old.child(seg)
		}
		child := n.child(seg)
		if child == nil {
			name := seg + "." + n.name // The root's name is "": its children are "<seg>.".
			if old != nil {
				name = old.name
			}
			child = newNode(name, stamp)
			n.addChild(seg, child)
			t.byName[child.name] = child
		}
		child.changed.Store(stamp)
		n = child
	}
	return n
}

// set stores r, written at rev, at n.
func (t *tree) set(n *node, r *record, rev int64) {
	if n.value == nil {
		t.count++
	}
	n.value, n.rev = r, rev
}

// internHost makes r's host share the name of the node it names, if any:
// SRV and PTR targets are the names of services and endpoints. A load
// interns at its end: a PTR record comes in the list before the service it
// names (arpa sorts first).
func (t *tree) internHost(r *record) {
	if n := t.byName[r.Host]; n != nil {
		r.Host = n.name
	}
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
	child := n.child(segs[0])
	if child == nil {
		return false
	}
	had := t.remove(child, segs[1:], stamp)
	if child.value == nil && len(child.kids) == 0 {
		n.removeChild(segs[0])
		delete(t.byName, child.name)
	}
	return had
}

// Records returns the records at name: the value of a leaf, or every record
// below a directory. Labels "*" and "any" match any label. With exact, a
// directory yields nothing (SkyDNS's CNAME lookup).
func (ix *Index) Records(name string, exact bool) ([]*record, error) {
	sx, _, err := ix.VersionedRecords(name, exact, nil)
	return sx, err
}

// VersionedRecords is Records with the Version of what it read, charging
// every node it visits to b (nil: no limit). A wildcard name gets the zero
// Version: its answer spans a directory's siblings. A walk that passes b's
// limit stops there and fails with errOverBudget.
func (ix *Index) VersionedRecords(name string, exact bool, b *budget) ([]*record, Version, error) {
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
		child := n.child(labels[i])
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
func (ix *Index) recordsAt(labels []string, exact bool, b *budget) ([]*record, error) {
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
func (n *node) lookup(segs []string, exact bool, b *budget) ([]*record, error) {
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
func (n *node) answer(exact bool, b *budget) []*record {
	if len(n.kids) == 0 || exact {
		if n.value == nil {
			return nil
		}
		return []*record{n.value}
	}
	return n.collect(nil, b)
}

func (n *node) find(segs []string) *node {
	for _, seg := range segs {
		n = n.child(seg)
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
func (n *node) collect(out []*record, b *budget) []*record {
	if n.value != nil {
		out = append(out, n.value)
	}
	for _, child := range n.kids {
		if child.hidden() {
			continue
		}
		if !b.visit() {
			return out
		}
		out = child.collect(out, b)
	}
	return out
}

// hidden reports whether the node's segment starts with "_".
func (n *node) hidden() bool { return n.name != "" && n.name[0] == '_' }

// wildcard reads the directory above the first wildcard segment and keeps
// the leaves whose segments match the query's position by position. A leaf
// shorter than the query does not match; a longer one does (SkyDNS's
// loopNodes).
func (n *node) wildcard(segs []string, first int, b *budget) ([]*record, error) {
	dir := n.find(segs[:first])
	if dir == nil {
		return nil, errNameNotFound
	}
	var out []*record
	dir.matchBelow(segs[first:], &out, b)
	return out, nil
}

// matchBelow walks only where pattern can match: every child for a
// wildcard segment, the one child of that name for any other (a map probe,
// not a scan, so "web.any.svc" costs a probe per namespace).
func (n *node) matchBelow(pattern []string, out *[]*record, b *budget) {
	if len(pattern) == 0 {
		*out = n.collect(*out, b)
		return
	}
	if !msg.IsWildcard(pattern[0]) {
		if child := n.child(pattern[0]); child != nil && !child.hidden() && b.visit() {
			child.matchBelow(pattern[1:], out, b)
		}
		return
	}
	for _, child := range n.kids {
		if child.hidden() {
			continue
		}
		if !b.visit() {
			return
		}
		child.matchBelow(pattern[1:], out, b)
	}
}
