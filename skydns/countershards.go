package skydns

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counterShard is a share of skydns_dns_requests_total,
// skydns_dns_responses_total, skydns_answer_cache_lookups_total and
// skydns_dns_request_duration_seconds, which a scrape adds to the
// metrics' own series (summedCounters, latencyHistogram). Counted in the
// metrics themselves, every query wrote cache lines every core writes: on
// some machines a second core then added less than nothing
// (docs/benchmarks-cores.md). A UDP reader has a shard of its own, into
// which it adds a batch's counts at its end (readerTally); the queries
// served outside a reader (TCP, and those that left their reader to wait
// upstream) count into the shard of their pooled request, one of a few
// per core (Metrics.spread), so cores serving at once seldom write the
// same words. The padding keeps other allocations' words off its cache
// lines.
type counterShard struct {
	_        [64]byte
	requests [len(protos)][len(countedQtypes) + 1]atomic.Uint64 // By proto, then countedQtypes's order, then every other qtype.
	rcodes   [shardRcodes]atomic.Uint64
	hits     atomic.Uint64 // Packed answers found...
	misses   atomic.Uint64 // ...and looked for in vain.
	latency  [len(protos)]*latencyShard
	_        [64]byte
}

// protos are the transports' label values, in counterShard's order.
var protos = [...]string{"udp", "tcp"}

// protoIndex is tcp's place in protos.
func protoIndex(tcp bool) int {
	if tcp {
		return 1
	}
	return 0
}

// shardRcodes: a shard counts the rcodes below it, which are all named in
// miekg/dns (NOERROR to DSOTYPENI) and so all have a series from the
// start; the rest (EDNS0's extended ones) go to the metrics' own.
const shardRcodes = dns.RcodeStatefulTypeNotImplemented + 1

// request notes a query of qtype over tcp or udp.
func (c *counterShard) request(tcp bool, qtype uint16) {
	c.requests[protoIndex(tcp)][qtypeIndex(qtype)].Add(1)
}

// response notes a reply with rcode, sent seconds after its query came;
// false, and nothing noted, for an rcode the shard does not count.
func (c *counterShard) response(tcp bool, rcode int, seconds float64) bool {
	if rcode >= shardRcodes {
		return false
	}
	c.rcodes[rcode].Add(1)
	c.latency[protoIndex(tcp)].observe(seconds)
	return true
}

// lookup notes a look for a packed answer, which found one or not.
func (c *counterShard) lookup(hit bool) {
	if hit {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
}

// counterShards are the shards, for scrapes to add up.
type counterShards struct {
	mu     sync.Mutex
	shards []*counterShard
}

// newShard is a new shard of m's, which scrapes add from now on.
func (m *Metrics) newShard() *counterShard {
	c := new(counterShard)
	for i, proto := range protos {
		c.latency[i] = m.duration.shard(proto)
	}
	m.shards.mu.Lock()
	defer m.shards.mu.Unlock()
	m.shards.shards = append(m.shards.shards, c)
	return c
}

// total adds up one counter of every shard.
func (s *counterShards) total(counter func(*counterShard) *atomic.Uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, c := range s.shards {
		n += counter(c).Load()
	}
	return n
}

// requests is the shards' count for a series of
// skydns_dns_requests_total, by its label values (proto, type).
func (s *counterShards) requests(labels []string) uint64 {
	p := slices.Index(protos[:], labels[0])
	if p < 0 {
		return 0
	}
	i := len(countedQtypes) // "other"
	if labels[1] != "other" {
		qtype, ok := dns.StringToType[labels[1]]
		if i = qtypeIndex(qtype); !ok || i == len(countedQtypes) {
			return 0 // No series a shard counts into.
		}
	}
	return s.total(func(c *counterShard) *atomic.Uint64 { return &c.requests[p][i] })
}

// responses is the shards' count for a series of
// skydns_dns_responses_total, by its rcode label.
func (s *counterShards) responses(labels []string) uint64 {
	rcode, ok := dns.StringToRcode[labels[0]]
	if !ok || rcode >= shardRcodes {
		return 0
	}
	return s.total(func(c *counterShard) *atomic.Uint64 { return &c.rcodes[rcode] })
}

// lookups is the shards' count for a series of
// skydns_answer_cache_lookups_total, by its result label.
func (s *counterShards) lookups(labels []string) uint64 {
	switch labels[0] {
	case "hit":
		return s.total(func(c *counterShard) *atomic.Uint64 { return &c.hits })
	case "miss":
		return s.total(func(c *counterShard) *atomic.Uint64 { return &c.misses })
	}
	return 0
}

// qtypeIndex is qtype's place in countedQtypes, len(countedQtypes) for
// any other. A and AAAA, nearly every query, come first.
func qtypeIndex(qtype uint16) int {
	for i, t := range countedQtypes {
		if t == qtype {
			return i
		}
	}
	return len(countedQtypes)
}

// summedCounters is a CounterVec whose series a scrape adds the shards'
// counts to (shards, by the series' label values): the metric is the
// one it always was.
type summedCounters struct {
	*prometheus.CounterVec
	desc   *prometheus.Desc
	labels []string
	shards func(labelValues []string) uint64
}

func newSummedCounters(opts prometheus.CounterOpts, labels []string, shards func([]string) uint64) *summedCounters {
	return &summedCounters{
		CounterVec: prometheus.NewCounterVec(opts, labels),
		desc:       prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name), opts.Help, labels, nil),
		labels:     labels,
		shards:     shards,
	}
}

// Collect passes on the vec's series, each with the shards' counts added.
func (c *summedCounters) Collect(ch chan<- prometheus.Metric) {
	eachCollected(c.CounterVec, func(m prometheus.Metric, pb *dto.Metric) {
		if pb == nil {
			ch <- m
			return
		}
		values := make([]string, len(c.labels))
		for i, name := range c.labels {
			values[i] = labelValue(pb, name)
		}
		if n := c.shards(values); n > 0 {
			m = prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, pb.GetCounter().GetValue()+float64(n), values...)
		}
		ch <- m
	})
}
