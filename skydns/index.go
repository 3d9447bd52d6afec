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
}

// tree is the whole prefix as of one etcd revision. byName finds any node
// by its DNS name in one probe; the nested maps serve directory walks and
// wildcards. Both are kept in step by put and remove.
type tree struct {
	root   node
	byName map[string]*node
	count  int // Number of values.
}

func newTree() *tree {
	return &tree{byName: make(map[string]*node)}
}

// Index holds the records under the prefix in memory. Reads take a read
// lock for the length of one walk; the watcher applies changes under the
// write lock, and a re-list swaps in a whole new tree at once.
type Index struct {
	prefix string

	mu     sync.RWMutex
	tree   *tree // nil until the first list has loaded.
	loaded atomic.Bool

	generation atomic.Uint64 // Bumped on every change, for derived views.
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
	t := newTree()
	for i := range records {
		if segs, ok := msg.KeySegments(lowerASCII(records[i].Key), ix.prefix); ok {
			t.put(segs, &records[i])
		}
	}
	ix.mu.Lock()
	ix.tree = t
	ix.mu.Unlock()
	ix.loaded.Store(true)
	ix.generation.Add(1)
}

// Put adds or replaces the record at s.Key.
func (ix *Index) Put(s msg.Service) {
	segs, ok := msg.KeySegments(lowerASCII(s.Key), ix.prefix)
	if !ok {
		return
	}
	ix.mu.Lock()
	if ix.tree != nil {
		ix.tree.put(segs, &s)
	}
	ix.mu.Unlock()
	ix.generation.Add(1)
}

// Delete removes the record at key, if any.
func (ix *Index) Delete(key string) {
	segs, ok := msg.KeySegments(lowerASCII(key), ix.prefix)
	if !ok {
		return
	}
	ix.mu.Lock()
	if ix.tree != nil && ix.tree.remove(&ix.tree.root, segs) {
		ix.tree.count--
	}
	ix.mu.Unlock()
	ix.generation.Add(1)
}

func (t *tree) put(segs []string, s *msg.Service) {
	n := &t.root
	for _, seg := range segs {
		child := n.children[seg]
		if child == nil {
			if n.children == nil {
				n.children = make(map[string]*node, 1)
			}
			child = &node{seg: seg, name: seg + "." + n.name}
			n.children[seg] = child
			n.kids = append(n.kids, child)
			t.byName[child.name] = child
		}
		n = child
	}
	if n.value == nil {
		t.count++
	}
	n.value = s
}

// remove deletes the value at segs below n, pruning nodes left empty, and
// reports whether a value was there.
func (t *tree) remove(n *node, segs []string) bool {
	if len(segs) == 0 {
		had := n.value != nil
		n.value = nil
		return had
	}
	child := n.children[segs[0]]
	if child == nil {
		return false
	}
	had := t.remove(child, segs[1:])
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
	if hasWildcard(name) {
		return ix.recordsAt(msg.Labels(name), exact)
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
		return nil, errNotLoaded
	}
	n := ix.tree.byName[name]
	if n == nil {
		if name == "." {
			n = &ix.tree.root
		} else {
			return nil, errNameNotFound
		}
	}
	return n.answer(exact), nil
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
func (ix *Index) recordsAt(labels []string, exact bool) ([]*msg.Service, error) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	if ix.tree == nil {
		return nil, errNotLoaded
	}
	segs := make([]string, len(labels))
	for i, l := range labels {
		segs[len(labels)-1-i] = l
	}
	for i, seg := range segs {
		if msg.IsWildcard(seg) {
			return ix.tree.root.wildcard(segs, i)
		}
	}
	n := ix.tree.root.find(segs)
	if n == nil {
		return nil, errNameNotFound
	}
	return n.answer(exact), nil
}

// answer is what a lookup that ends at n returns: the value of a leaf, or
// everything below a directory (nothing for an exact lookup).
func (n *node) answer(exact bool) []*msg.Service {
	if len(n.children) == 0 || exact {
		if n.value == nil {
			return nil
		}
		return []*msg.Service{n.value}
	}
	return n.collect(nil)
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
// seeing them (legacy-behaviour.md §2.5).
func (n *node) collect(out []*msg.Service) []*msg.Service {
	if n.value != nil {
		out = append(out, n.value)
	}
	for _, child := range n.kids {
		if isHidden(child.seg) {
			continue
		}
		out = child.collect(out)
	}
	return out
}

func isHidden(seg string) bool { return seg != "" && seg[0] == '_' }

// wildcard reads the directory above the first wildcard segment and keeps
// the leaves whose segments match the query's position by position. A leaf
// shorter than the query does not match; a longer one does (SkyDNS's
// loopNodes).
func (n *node) wildcard(segs []string, first int) ([]*msg.Service, error) {
	dir := n.find(segs[:first])
	if dir == nil {
		return nil, errNameNotFound
	}
	var out []*msg.Service
	dir.matchBelow(segs[first:], &out)
	return out, nil
}

func (n *node) matchBelow(pattern []string, out *[]*msg.Service) {
	if len(pattern) == 0 {
		*out = n.collect(*out)
		return
	}
	for _, child := range n.kids {
		if isHidden(child.seg) {
			continue
		}
		if msg.IsWildcard(pattern[0]) || child.seg == pattern[0] {
			child.matchBelow(pattern[1:], out)
		}
	}
}

// lowerASCII lowercases keys so lookups are case-insensitive. Kubernetes
// names are lowercase already; this only guards hand-written records.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
