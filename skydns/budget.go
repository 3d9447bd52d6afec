package skydns

import (
	"context"
	"errors"
	"time"
)

// The work one query may make the resolver do. Any tenant can send any
// name, and any tenant who can create a Service shapes the records, so a
// single query must not cost more than a small, fixed amount of CPU: a
// directory or wildcard over every service, or records whose hosts are
// names that fan out into more of the same, would otherwise cost seconds.
// Legitimate answers stay far below each limit (docs/security.md): a
// reply cannot carry more than about 4,000 address records even over TCP,
// and the largest Endpoints object holds 1,000 addresses.
const (
	// maxQueryLookups bounds the index reads of one query: the name
	// itself, each CNAME, SRV and MX target, each name of a chain.
	maxQueryLookups = 2048
	// maxQueryNodes bounds the index nodes one query visits: one per plain
	// lookup, one per node a directory or wildcard walk passes through
	// (every record gathered is one).
	maxQueryNodes = 8192
	// maxQueryChases bounds the names followed beyond the ones asked for:
	// CNAMEs chased (across the answer, not only down one chain, whose
	// depth maxCNAMEChain bounds) and names looked up upstream.
	maxQueryChases = 64
)

// errOverBudget ends a query that passed one of its limits: SERVFAIL,
// counted by limit in skydns_dns_budget_exceeded_total.
var errOverBudget = errors.New("query over its work budget")

// Budget limits, as the metric labels them.
const (
	limitLookups  = "lookups"
	limitNodes    = "nodes"
	limitChases   = "chases"
	limitUpstream = "upstream"
)

// budget is what one query has spent, and what it has read. The zero
// value is a fresh budget, so a pooled request resets it for free; a nil
// budget is unlimited (for reads that no client drives). Once over, it
// stays over: every later read fails at once, and the query ends SERVFAIL.
type budget struct {
	lookups, nodes, chases int
	// deadline bounds all upstream work of the query together; set by the
	// first upstream lookup, so a query that has none pays for no timer.
	deadline time.Time
	over     string // The first limit passed; "" while within all of them.
	// basis is the Version of each read, for the packed step to tell
	// whether the reply may be kept (packed.go).
	basis basis
}

// spend charges n to one of the counters and reports whether the query
// is still within its limits.
func (b *budget) spend(counter *int, n, limit int, name string) bool {
	if b.over != "" {
		return false
	}
	*counter += n
	if *counter > limit {
		b.over = name
		return false
	}
	return true
}

func (b *budget) lookup() bool {
	return b == nil || b.spend(&b.lookups, 1, maxQueryLookups, limitLookups)
}

func (b *budget) visit() bool {
	return b == nil || b.spend(&b.nodes, 1, maxQueryNodes, limitNodes)
}

func (b *budget) chase() bool {
	return b == nil || b.spend(&b.chases, 1, maxQueryChases, limitChases)
}

// read notes the Version of a read the answer rests on: the zero Version
// for one not from the index.
func (b *budget) read(v Version) {
	if b != nil {
		b.basis.add(v)
	}
}

// exceeded reports whether a limit was passed, and is the error to return
// then.
func (b *budget) exceeded() error {
	if b != nil && b.over != "" {
		return errOverBudget
	}
	return nil
}

// upstreamContext is the context for one upstream lookup of the query:
// all of them share one deadline, window after the first, so a query
// chasing many names behind an upstream that does not answer still gets
// its reply within one window.
func (b *budget) upstreamContext(ctx context.Context, window time.Duration) (context.Context, context.CancelFunc) {
	if b == nil {
		return context.WithTimeout(ctx, window)
	}
	if b.deadline.IsZero() {
		b.deadline = time.Now().Add(window)
	}
	return context.WithDeadline(ctx, b.deadline)
}

// upstreamDone notes how an upstream lookup ended: cut short by the
// deadline, the query is over budget.
func (b *budget) upstreamDone(ctx context.Context) {
	if b != nil && ctx.Err() != nil && b.over == "" {
		b.over = limitUpstream
	}
}
