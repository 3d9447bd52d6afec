package skydns

import (
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// readerCounts is one UDP reader's share of skydns_dns_requests_total
// (its proto="udp" series), skydns_dns_responses_total and
// skydns_answer_cache_lookups_total. The reader alone writes it, once a
// batch (readerTally.addUp); a scrape adds every reader's to the counters
// (summedCounters). Added to the counters themselves, a batch's counts
// wrote cache lines every reader writes: on some machines a second core
// then added far less than a core's worth (docs/benchmarks-cores.md).
// The padding keeps other allocations' words off its cache lines.
type readerCounts struct {
	_        [64]byte
	requests [len(countedQtypes) + 1]atomic.Uint64 // In countedQtypes's order, then every other qtype.
	rcodes   [readerRcodes]atomic.Uint64
	hits     atomic.Uint64 // Packed answers found...
	misses   atomic.Uint64 // ...and looked for in vain.
	_        [64]byte
}

// readerRcodes: a reader counts the rcodes below it, which are all
// named in miekg/dns (NOERROR to DSOTYPENI) and so all have a series from
// the start; the rest (EDNS0's extended ones) go to the counters.
const readerRcodes = dns.RcodeStatefulTypeNotImplemented + 1

// addCount adds n to c, which only the caller writes: no read-modify-write
// instruction is needed, and a scrape reads either value.
func addCount(c *atomic.Uint64, n int) {
	if n > 0 {
		c.Store(c.Load() + uint64(n))
	}
}

// readerShares are the readers' counts, for scrapes to add up.
type readerShares struct {
	mu     sync.Mutex
	shares []*readerCounts
}

// share is a new reader's counts, which scrapes add from now on.
func (s *readerShares) share() *readerCounts {
	c := new(readerCounts)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shares = append(s.shares, c)
	return c
}

// total adds up one counter of every reader's counts.
func (s *readerShares) total(counter func(*readerCounts) *atomic.Uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, c := range s.shares {
		n += counter(c).Load()
	}
	return n
}

// requests is the readers' count for a series of
// skydns_dns_requests_total, by its label values (proto, type).
func (s *readerShares) requests(labels []string) uint64 {
	if labels[0] != "udp" {
		return 0
	}
	i := len(countedQtypes) // "other"
	if qtype, ok := dns.StringToType[labels[1]]; ok {
		i = qtypeIndex(qtype)
	}
	return s.total(func(c *readerCounts) *atomic.Uint64 { return &c.requests[i] })
}

// responses is the readers' count for a series of
// skydns_dns_responses_total, by its rcode label.
func (s *readerShares) responses(labels []string) uint64 {
	rcode, ok := dns.StringToRcode[labels[0]]
	if !ok || rcode >= readerRcodes {
		return 0
	}
	return s.total(func(c *readerCounts) *atomic.Uint64 { return &c.rcodes[rcode] })
}

// lookups is the readers' count for a series of
// skydns_answer_cache_lookups_total, by its result label.
func (s *readerShares) lookups(labels []string) uint64 {
	switch labels[0] {
	case "hit":
		return s.total(func(c *readerCounts) *atomic.Uint64 { return &c.hits })
	case "miss":
		return s.total(func(c *readerCounts) *atomic.Uint64 { return &c.misses })
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

// summedCounters is a CounterVec whose series a scrape adds the readers'
// counts to (readers, by the series' label values): the metric is the
// one it always was.
type summedCounters struct {
	*prometheus.CounterVec
	desc    *prometheus.Desc
	labels  []string
	readers func(labelValues []string) uint64
}

func newSummedCounters(opts prometheus.CounterOpts, labels []string, readers func([]string) uint64) *summedCounters {
	return &summedCounters{
		CounterVec: prometheus.NewCounterVec(opts, labels),
		desc:       prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name), opts.Help, labels, nil),
		labels:     labels,
		readers:    readers,
	}
}

// Collect passes on the vec's series, each with the readers' counts added.
func (c *summedCounters) Collect(ch chan<- prometheus.Metric) {
	series := make(chan prometheus.Metric, 16)
	go func() { c.CounterVec.Collect(series); close(series) }()
	for m := range series {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			ch <- m
			continue
		}
		values := make([]string, len(c.labels))
		for i, name := range c.labels {
			values[i] = labelValue(&pb, name)
		}
		n := c.readers(values)
		if n == 0 {
			ch <- m
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, pb.GetCounter().GetValue()+float64(n), values...)
	}
}
