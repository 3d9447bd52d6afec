package skydns

import (
	"bytes"
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
	name  string // The DNS name of this node, lowercase, with the root dot; "" at the root.

	// seen is the number of the last load (Load.list) that found value in
	// etcd: a relist removes, at its end, every value it did not see.
	// Only the loader reads or writes it. Fills the 64-byte size class.
	seen uint64

	// changed holds the number of the last change at or below this node:
	// a put or delete whose path runs through it (a relist's included), or
	// its own pruning. A cell of its own, so that a Version
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

// tree is the whole prefix as of one etcd revision (while a relist runs,
// of two: see Load). byName finds any node by its DNS name in one probe;
// the children serve directory walks and wildcards. Both are kept in step
// by path, remove and sweep.
type tree struct {
	root   node
	byName map[string]*node
	count  int      // Number of values.
	pods   podAddrs // nil unless the index tracks pods (--autopath).
}

// newTree is an empty tree. Its nodes are stamped 0: a Version needs only
// that its cell changes with every later change, which stamps from the
// generation counter (never 0) guarantee.
func newTree(trackPods bool) *tree {
	t := &tree{root: *newNode("", 0), byName: make(map[string]*node)}
	if trackPods {
		t.pods = make(podAddrs)
	}
	return t
}

// Index holds the records under the prefix in memory. Reads take a read
// lock for the length of one walk; changes, a watch event's or a relist's,
// take the write lock one record at a time. It has one writer at a time
// (the Watcher), which alone uses Load.
type Index struct {
	prefix string

	mu     sync.RWMutex
	tree   *tree // nil until the first list has loaded.
	loaded atomic.Bool

	generation atomic.Uint64 // Bumped on every change, under mu; also the stamp of Versions.
	trackPods  atomic.Bool   // Trees keep podAddrs (TrackPods).
	lists      uint64        // Loads begun, each one numbered: see node.seen. The writer's alone.
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

// Replace makes the index hold exactly records.
func (ix *Index) Replace(records []msg.Service) {
	l := ix.NewLoad()
	for _, s := range records {
		l.Add(s, 0)
	}
	l.Commit()
}

// Load brings the index to one list of etcd, record by record, as the
// list's pages come: Keep marks a record the index already holds as seen,
// Add puts a new or changed one, and Commit removes every record the list
// did not see. The first load builds a tree of its own, which answers
// nothing (queries get SERVFAIL) until Commit swaps it in. A relist works
// on the tree that is answering, in place: what it costs beside that tree
// is the records it parses and one page of the response, not a second
// tree. While it runs, answers mix records of the old list and the new
// one, each record whole (records are never changed once an index holds
// them, only replaced); a name the list changed or removed retires the
// Versions (and so the packed answers) taken of it, while unchanged names
// keep theirs.
//
// A list that etcd's compaction cuts short starts over with Restart,
// which numbers the marks anew: a key only the abandoned attempt saw, and
// since deleted, is not seen again and goes at Commit. A list that fails
// is simply dropped; the next one, with its own number, sweeps what it
// left.
type Load struct {
	ix      *Index
	t       *tree   // The tree loaded into: ix.tree, or before the first list one of the load's own.
	live    bool    // t is answering queries: changes take the write lock and stamp Versions.
	list    uint64  // This attempt's number, the mark of the values it has seen.
	seen    int     // Values marked with list.
	added   int     // Values put (new or changed), over every attempt.
	unnamed []*node // Nodes whose record's host named no node when put: Commit interns it.
	name    []byte  // Keep's scratch.
}

// NewLoad starts a load of ix.
func (ix *Index) NewLoad() *Load {
	ix.mu.RLock()
	t := ix.tree
	ix.mu.RUnlock()
	l := &Load{ix: ix, t: t, live: t != nil}
	if t == nil {
		l.t = newTree(ix.trackPods.Load())
	}
	l.Restart()
	return l
}

// Restart begins the list again, as of a newer revision: what the earlier
// attempts put stays, and counts as seen only when seen again.
func (l *Load) Restart() {
	l.ix.lists++
	l.list, l.seen = l.ix.lists, 0
}

// Keep marks the record the index holds at key as seen, when it was
// written at rev, instead of the value being parsed and put again, and
// reports whether it did. The record and its Versions are left as they are.
//
// A relist calls it for every key, so it allocates nothing: the key's
// name is written into a buffer the load reuses, and looked up in the
// name map as it is.
func (l *Load) Keep(key []byte, rev int64) bool {
	name, upper, ok := appendKeyName(l.name[:0], key, l.ix.prefix)
	l.name = name
	if !ok || rev == 0 {
		return false
	}
	// A read lock: the mark is the loader's alone, no reader looks at it.
	l.ix.mu.RLock()
	defer l.ix.mu.RUnlock()
	n := l.t.byName[string(name)]
	if n == nil || n.value == nil || n.value.rev != rev {
		return false
	}
	// Keys that differ only in case share a node: the record must be this
	// key's, and a lowercase key's record keeps no key (see newRecord).
	if k := n.value.key(); (k == "" && upper) || (k != "" && k != string(key)) {
		return false
	}
	l.mark(n)
	return true
}

// appendKeyName appends to dst the DNS name key maps to below /prefix/,
// lowercase ("/skydns/local/Cluster/x" gives "x.cluster.local."), and
// reports whether key had an upper-case letter, and ok as
// msg.KeySegments does: false for a key outside the prefix or with a
// segment that is not a DNS label.
func appendKeyName(dst, key []byte, prefix string) (name []byte, upper, ok bool) {
	n := len(prefix) + 2
	if len(key) <= n || key[0] != '/' || string(key[1:n-1]) != prefix || key[n-1] != '/' {
		return dst, false, false
	}
	rest := key[n:]
	for end := len(rest); end >= 0; {
		start := bytes.LastIndexByte(rest[:end], '/') + 1
		seg := rest[start:end]
		if len(seg) == 0 || len(seg) > msg.MaxLabelLen || bytes.IndexByte(seg, '.') >= 0 {
			return dst, false, false
		}
		for _, c := range seg {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
				upper = true
			}
			dst = append(dst, c)
		}
		dst = append(dst, '.')
		end = start - 1
	}
	return dst, upper, true
}

// Add puts s, written at revision rev (0: unknown), replacing what the
// index holds at its key, and marks it seen.
func (l *Load) Add(s msg.Service, rev int64) {
	segs, ok := msg.KeySegments(lowerASCII(s.Key), l.ix.prefix)
	if !ok {
		return
	}
	var stamp uint64
	if l.live {
		l.ix.mu.Lock()
		defer l.ix.mu.Unlock()
		stamp = l.ix.generation.Add(1)
	}
	n, named := l.t.put(segs, &s, rev, stamp)
	if !named {
		// A PTR record comes in the list before the service it names
		// (arpa sorts first): Commit tries again.
		l.unnamed = append(l.unnamed, n)
	}
	l.mark(n)
	l.added++
}

func (l *Load) mark(n *node) {
	if n.seen != l.list {
		n.seen = l.list
		l.seen++
	}
}

// Commit ends the load: every record the list did not see goes, hosts
// that name a node found since share its name, and the first load's tree
// is swapped in. It returns how many records were put and how many
// removed.
func (l *Load) Commit() (added, removed int) {
	ix := l.ix
	if l.seen < l.t.count {
		removed = l.sweep()
	}
	if !l.live {
		l.internUnnamed() // Before anyone can read the tree.
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.generation.Add(1)
	if l.live {
		l.internUnnamed()
	}
	ix.tree = l.t
	ix.loaded.Store(true)
	added = l.added
	*l = Load{}
	return added, removed
}

// sweep removes every record the list did not see, as a watch's delete
// would: pruning the nodes left empty and stamping the path to each. The
// walk that finds them (the whole tree, tens of milliseconds at 100,000
// services) only reads, so queries go on meanwhile; each removal then
// takes the write lock on its own.
func (l *Load) sweep() (removed int) {
	ix := l.ix
	ix.mu.RLock()
	gone := l.t.root.unseen(l.list, nil)
	ix.mu.RUnlock()
	for _, n := range gone {
		segs := msg.Labels(n.name)
		slices.Reverse(segs)
		ix.mu.Lock()
		if l.t.remove(&l.t.root, segs, ix.generation.Add(1)) {
			l.t.count--
			removed++
		}
		ix.mu.Unlock()
	}
	return removed
}

// unseen appends to out the nodes at and below n whose value load list did
// not see.
func (n *node) unseen(list uint64, out []*node) []*node {
	if n.value != nil && n.seen != list {
		out = append(out, n)
	}
	for _, child := range n.kids {
		out = child.unseen(list, out)
	}
	return out
}

// internUnnamed makes the hosts of the records put without a node of
// their name share the name of that node, if there is one now. A tree
// that is answering gets a copy of the record: a reader may hold the one
// it replaces.
func (l *Load) internUnnamed() {
	for _, n := range l.unnamed {
		r := n.value
		if r == nil {
			continue
		}
		target := l.t.byName[r.Host]
		if target == nil {
			continue
		}
		if l.live {
			c := *r
			r = &c
			n.value = r
		}
		r.Host = target.name
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
		ix.tree.put(segs, &s, rev, stamp)
	}
}

// put sets the record of s, at etcd revision rev, at the node of segs
// (made with stamp if new); named is false when its host is a name no
// node has yet (internHost), the watch and a relist each deal with that.
func (t *tree) put(segs []string, s *msg.Service, rev int64, stamp uint64) (n *node, named bool) {
	n = t.path(segs, stamp)
	r := newRecord(s, n.name, rev)
	named = t.internHost(r)
	t.set(n, r)
	return n, named
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
// every node on the way.
func (t *tree) path(segs []string, stamp uint64) *node {
	n := &t.root
	n.changed.Store(stamp)
	for _, seg := range segs {
		child := n.child(seg)
		if child == nil {
			child = newNode(seg+"."+n.name, stamp) // The root's name is "": its children are "<seg>.".
			n.addChild(seg, child)
			t.byName[child.name] = child
		}
		child.changed.Store(stamp)
		n = child
	}
	return n
}

// set stores r at n.
func (t *tree) set(n *node, r *record) {
	if n.value == nil {
		t.count++
	}
	if t.pods != nil {
		t.pods.note(n.name, n.value, -1)
		t.pods.note(n.name, r, 1)
	}
	n.value = r
}

// internHost makes r, not yet in the tree, share the name of the node its
// host names: SRV and PTR targets are the names of services and
// endpoints. It reports false when the host is a name no node has yet.
func (t *tree) internHost(r *record) bool {
	if n := t.byName[r.Host]; n != nil {
		r.Host = n.name
		return true
	}
	return r.Host == "" || r.HostIP() != nil
}

// remove deletes the value at segs below n, pruning nodes left empty and
// stamping every node on the way, and reports whether a value was there.
func (t *tree) remove(n *node, segs []string, stamp uint64) bool {
	n.changed.Store(stamp)
	if len(segs) == 0 {
		had := n.value != nil
		if t.pods != nil {
			t.pods.note(n.name, n.value, -1)
		}
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

// closestEncloser is the deepest existing name at or above name (RFC
// 5155's closest encloser, when name does not exist); "" before the first
// list.
func (ix *Index) closestEncloser(name string) string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.tree == nil {
		return ""
	}
	return ix.tree.deepestOnPath(strings.ToLower(name)).name
}

// deepestOnPath is the deepest existing node on the path a put of a record
// at name (lowercase) would take: whatever creates name stamps it.
//
// Every node is in byName under its name, and a node's ancestors exist
// with it, so the path is followed by probing name's suffixes there, from
// the shortest, until one is missing: as many probes as the path is deep,
// plus one. Walking down the children finds the same node, but a child
// is found by bisecting its parent's children, which under a namespace of
// thousands of services means a dozen comparisons, each reading a node
// that is seldom in the processor's cache: the cost of every in-zone
// NXDOMAIN of the search list's misses.
func (t *tree) deepestOnPath(name string) *node {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	n := &t.root
	for i := len(name) - 1; i >= 0; i-- {
		if i > 0 && name[i-1] != '.' {
			continue // Not the start of a label.
		}
		next := t.byName[name[i:]]
		if next == nil {
			break
		}
		n = next
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
