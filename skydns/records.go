package skydns

import (
	"strings"
)

// recordSource is what the resolver reads records from; the Index is the
// real one.
type recordSource interface {
	VersionedRecords(name string, exact bool, b *budget) ([]*record, Version, error)
}

// records reads name from the source, then applies SkyDNS's per-lookup
// de-duplication and group filtering. Every record type reads through here,
// so hidden keys, dedup, groups and the query's budget b apply alike, and
// b notes the Version of every read: a reply built from the records is
// exact for as long as all of them are current.
func (r *Resolver) records(name string, exact bool, b *budget) ([]*record, error) {
	if !b.lookup() {
		return nil, errOverBudget
	}
	sx, v, err := r.source.VersionedRecords(name, exact, b)
	b.read(v)
	if err != nil || len(sx) < 2 {
		return sx, err
	}
	return filterGroups(dedupServices(sx)), nil
}

// dedupServices drops records equal in host, port, priority, weight and text,
// keeping the first: the same endpoint written under two keys answers once.
//
// Not inlined: its map would otherwise enlarge the stack frame of every
// lookup, most of which have one record and never get here (each query runs
// on a fresh goroutine whose stack would have to grow).
//
//go:noinline
func dedupServices(sx []*record) []*record {
	if len(sx) < 2 {
		return sx
	}
	type bare struct {
		host                   string
		port, priority, weight uint16
		text                   string
	}
	seen := make(map[bare]bool, len(sx))
	out := sx[:0:0]
	for _, s := range sx {
		b := bare{s.Host, s.Port, s.Priority, s.Weight, s.Text()}
		if !seen[b] {
			seen[b] = true
			out = append(out, s)
		}
	}
	return out
}

// filterGroups applies SkyDNS groups: the records with the shortest keys
// (the fewest labels: the index keeps names, not keys) decide the group. If they agree on a non-empty group, only records of
// that group or of no group are kept; if any of them has no group, or they
// disagree, every record is kept.
//
//go:noinline
func filterGroups(sx []*record) []*record {
	if len(sx) < 2 {
		return sx
	}
	shallowest := -1
	for _, s := range sx {
		if d := depth(s); shallowest < 0 || d < shallowest {
			shallowest = d
		}
	}
	group := ""
	for _, s := range sx {
		if depth(s) != shallowest {
			continue
		}
		if s.Group() == "" || (group != "" && s.Group() != group) {
			return sx
		}
		group = s.Group()
	}
	out := make([]*record, 0, len(sx))
	for _, s := range sx {
		if s.Group() == "" || s.Group() == group {
			out = append(out, s)
		}
	}
	return out
}

// depth is the number of labels of the record's name.
func depth(s *record) int { return strings.Count(s.Domain(), ".") }

// ttl is the record's TTL, or the configured default when it sets none.
func (r *Resolver) ttl(s *record) uint32 {
	if s.TTL == 0 {
		return r.opts.TTL
	}
	return s.TTL
}

// priority is the record's priority, or the configured default for 0.
func (r *Resolver) priority(s *record) int {
	if s.Priority == 0 {
		return int(r.opts.Priority)
	}
	return int(s.Priority)
}
