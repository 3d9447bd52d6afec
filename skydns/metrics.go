package skydns

import (
	"errors"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are skydns's Prometheus metrics. Labels are bounded: protocol,
// qtype (a fixed list, the rest "other") and rcode; never the name.
type Metrics struct {
	requests     *summedCounters
	responses    *summedCounters
	duration     *latencyHistogram
	forwards     *prometheus.CounterVec
	dropped      prometheus.Counter
	udpCapped    prometheus.Counter
	overBudgetBy *prometheus.CounterVec

	loopDetected prometheus.Gauge

	tcpConns   prometheus.Gauge
	tcpRefused prometheus.Counter
	tcpEvicted prometheus.Counter

	lookups *summedCounters // Of the packed answers, by result.

	// shards are the counts that requests, responses, lookups and
	// duration add (counterShard): the UDP readers' own, and spread, over
	// which the other queries' pooled requests are dealt (nextShard).
	shards     counterShards
	spread     []*counterShard
	spreadNext atomic.Uint32

	autopathBy *prometheus.CounterVec // --autopath: results by label.

	signatureHits   prometheus.Counter // -dnssec: RRSIGs from the signature cache,
	signatureMisses prometheus.Counter // and RRSIGs made.

	watchUp    prometheus.Gauge
	noSpace    prometheus.Gauge
	relists    prometheus.Counter
	malformed  prometheus.Counter
	lastChange prometheus.Gauge

	rcodes map[int]prometheus.Counter // The named rcodes' series, looked up once.
}

// countedQtypes get their own label value; every other qtype is "other".
var countedQtypes = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypePTR, dns.TypeCNAME, dns.TypeTXT,
	dns.TypeMX, dns.TypeNS, dns.TypeSOA, dns.TypeANY,
}

// NewMetrics registers skydns's metrics with reg. index may be nil in
// tests that do not serve it.
func NewMetrics(reg prometheus.Registerer, index *Index) *Metrics {
	m := &Metrics{
		duration: newLatencyHistogram(prometheus.HistogramOpts{
			Namespace: "skydns", Name: "dns_request_duration_seconds", Help: "Time to answer a DNS request.",
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2.5},
		}, "proto"),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "skydns", Name: "forward_requests_total", Help: "Queries sent upstream, by kind (recursive, lookup, stub) and result.",
		}, []string{"kind", "result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "skydns", Name: "dns_dropped_total", Help: "Requests dropped unanswered (stub-zone loops).",
		}),
		udpCapped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "skydns", Name: "dns_udp_capped_total", Help: "UDP replies truncated at --max-udp-size that the client's buffer would have taken whole.",
		}),
		overBudgetBy: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "skydns", Name: "dns_budget_exceeded_total", Help: "Queries answered SERVFAIL because they passed a per-query work limit, by limit (lookups, nodes, chases, upstream).",
		}, []string{"limit"}),
		loopDetected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skydns", Name: "forward_loop_detected", Help: "1 once a loop probe sent upstream came back to skydns: forwarding is off until restart.",
		}),
		tcpConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skydns", Name: "tcp_connections", Help: "TCP connections open.",
		}),
		tcpEvicted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "skydns", Name: "tcp_connections_evicted_total", Help: "Idle TCP connections closed to make room for a new one at --tcp-max-conns.",
		}),
		tcpRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "skydns", Name: "tcp_connections_refused_total", Help: "TCP connections closed at accept because --tcp-max-conns were open and none was idle.",
		}),
		watchUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skydns", Name: "etcd_watch_up", Help: "1 while skydns is listing or watching etcd successfully, 0 while etcd is unreachable.",
		}),
		noSpace: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skydns", Name: "etcd_nospace", Help: "1 while etcd's NOSPACE alarm is raised: kube2sky's writes are refused, so records may be stale (still served).",
		}),
		relists: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "skydns", Name: "etcd_lists_total", Help: "Full lists of the prefix loaded (start, compaction, reconnect).",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "skydns", Name: "etcd_malformed_values_total", Help: "Values under the prefix skipped because they are not a SkyDNS record.",
		}),
		lastChange: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "skydns", Name: "index_last_change_timestamp_seconds", Help: "When the index last changed (list or watch event).",
		}),
	}
	m.requests = newSummedCounters(prometheus.CounterOpts{
		Namespace: "skydns", Name: "dns_requests_total", Help: "DNS requests received, by transport and query type.",
	}, []string{"proto", "type"}, m.shards.requests)
	m.responses = newSummedCounters(prometheus.CounterOpts{
		Namespace: "skydns", Name: "dns_responses_total", Help: "DNS responses sent, by rcode.",
	}, []string{"rcode"}, m.shards.responses)
	m.lookups = newSummedCounters(prometheus.CounterOpts{
		Namespace: "skydns", Name: "answer_cache_lookups_total", Help: "Local queries (in the domain, or PTR in the reverse zones) looked up in the packed answers, by result (hit or miss).",
	}, []string{"result"}, m.shards.lookups)
	signatures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "skydns", Name: "dnssec_signature_cache_lookups_total", Help: "RRsets signed for DO requests (-dnssec), by result: hit (a signature from the -scache cache) or miss (signed anew).",
	}, []string{"result"})
	m.signatureHits, m.signatureMisses = signatures.WithLabelValues("hit"), signatures.WithLabelValues("miss")
	m.autopathBy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "skydns", Name: "autopath_total", Help: "With --autopath, NXDOMAIN replies for <x>.<ns>.svc.<domain> by result: hit (answered with a CNAME to a later search name), miss (no later name exists, or a step failed: the NXDOMAIN sent) or skipped (the client is no pod of <ns> alone).",
	}, []string{"result"})
	for _, result := range []string{autopathHit, autopathMiss, autopathSkipped} {
		m.autopathBy.WithLabelValues(result) // Each result at 0 from the start, for rate().
	}
	reg.MustRegister(m.autopathBy, m.lookups, signatures, m.requests, m.responses, m.duration, m.forwards, m.dropped, m.udpCapped, m.overBudgetBy, m.loopDetected, m.tcpConns, m.tcpRefused, m.tcpEvicted, m.watchUp, m.noSpace, m.relists, m.malformed, m.lastChange)
	if index != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "skydns", Name: "index_records", Help: "Records held in the in-memory index.",
			}, func() float64 { return float64(index.Len()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "skydns", Name: "index_loaded", Help: "1 once the first full list of etcd has loaded.",
			}, func() float64 { return boolFloat(index.Loaded()) }),
		)
	}
	for _, limit := range []string{limitLookups, limitNodes, limitChases, limitUpstream} {
		m.overBudgetBy.WithLabelValues(limit) // Exported at 0 from the start, so a rate has a baseline.
	}
	m.makeSeries()
	m.spread = make([]*counterShard, spreadPerCore*runtime.GOMAXPROCS(0))
	for i := range m.spread {
		m.spread[i] = m.newShard()
	}
	return m
}

// spreadPerCore is how many counter shards per core the queries served
// outside a UDP reader spread over: enough that two cores' pooled
// requests seldom share one, few enough that a scrape's sums stay cheap.
const spreadPerCore = 4

// nextShard is the shard of a new pooled request: each in turn.
func (m *Metrics) nextShard() *counterShard {
	return m.spread[m.spreadNext.Add(1)%uint32(len(m.spread))]
}

// eachCollected calls each with every metric c collects and what the
// metric writes: nil when it cannot be written.
func eachCollected(c prometheus.Collector, each func(m prometheus.Metric, pb *dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() { c.Collect(ch); close(ch) }()
	for m := range ch {
		pb := new(dto.Metric)
		if m.Write(pb) != nil {
			pb = nil
		}
		each(m, pb)
	}
}

// packedEntriesGauge exports the number of packed answers held.
func packedEntriesGauge(size func() int) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "skydns", Name: "answer_cache_entries", Help: "Packed in-zone answers held, current or stale.",
	}, func() float64 { return float64(size()) })
}

// makeSeries makes the series the counter shards add to: every one a
// shard may count, so that a scrape has a series to add each count to.
func (m *Metrics) makeSeries() {
	for _, proto := range protos {
		m.requests.WithLabelValues(proto, "other")
		for _, t := range countedQtypes {
			m.requests.WithLabelValues(proto, dns.TypeToString[t])
		}
	}
	m.rcodes = map[int]prometheus.Counter{}
	for rcode, name := range dns.RcodeToString {
		m.rcodes[rcode] = m.responses.WithLabelValues(name)
	}
	m.lookups.WithLabelValues("hit")
	m.lookups.WithLabelValues("miss")
}

// response counts a reply in the metrics' own series: one with an rcode
// the counter shards do not count (shardRcodes).
func (m *Metrics) response(proto string, rcode int, seconds float64) {
	m.responseCounter(rcode).Inc()
	m.duration.vec.WithLabelValues(proto).Observe(seconds)
}

// responseCounter counts the responses with rcode.
func (m *Metrics) responseCounter(rcode int) prometheus.Counter {
	if c, ok := m.rcodes[rcode]; ok {
		return c
	}
	return m.responses.WithLabelValues(strconv.Itoa(rcode))
}

// overBudget counts a query that passed its work budget's limit.
func (m *Metrics) overBudget(limit string) { m.overBudgetBy.WithLabelValues(limit).Inc() }

func (m *Metrics) forwardResult(kind string, err error) {
	result := "success"
	switch {
	case err == nil:
	case errors.Is(err, errAllFailed):
		result = "failed"
	case errors.Is(err, errBusy):
		result = "busy" // Not sent: --max-forwards in flight.
	case errors.Is(err, errLoop):
		result = "loop" // Not sent: a forwarding loop was found.
	default:
		result = "refused" // Not sent: too few labels.
	}
	m.forwards.WithLabelValues(kind, result).Inc()
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// autopath counts one autopath result (autopathHit, ...).
func (m *Metrics) autopath(result string) { m.autopathBy.WithLabelValues(result).Inc() }
