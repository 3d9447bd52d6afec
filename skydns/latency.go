package skydns

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// latencyHistogram is skydns_dns_request_duration_seconds: the
// HistogramVec ServeDNS observes into, and shards that the UDP readers
// observe their packed replies into, one each. A HistogramVec child is
// a few words every core writes for every query (its count, its sum's
// compare-and-swap, its bucket); a shard has one writer, so observing
// costs no shared cache line. A scrape adds the shards into the vec's
// proto="udp" series: the metric is the one it always was.
type latencyHistogram struct {
	vec     *prometheus.HistogramVec
	desc    *prometheus.Desc
	buckets []float64

	mu     sync.Mutex
	shards []*latencyShard
}

// maxLatencyBuckets is the most buckets a shard holds: its counts are an
// array in the shard itself, not a slice of their own, which the
// allocator could place on a cache line next to another shard's.
const maxLatencyBuckets = 15

// latencyShard is one reader's part: written by that reader alone, read
// by scrapes. The padding keeps other allocations' words off its cache
// lines.
type latencyShard struct {
	_       [64]byte
	buckets []float64
	counts  [maxLatencyBuckets + 1]atomic.Uint64 // Per bucket, not cumulative; then +Inf.
	sumBits atomic.Uint64                        // The sum's float64 bits.
	_       [64]byte
}

func newLatencyHistogram(opts prometheus.HistogramOpts, label string) *latencyHistogram {
	if len(opts.Buckets) > maxLatencyBuckets {
		panic("skydns: more latency buckets than a shard holds")
	}
	return &latencyHistogram{
		vec:     prometheus.NewHistogramVec(opts, []string{label}),
		desc:    prometheus.NewDesc(prometheus.BuildFQName(opts.Namespace, opts.Subsystem, opts.Name), opts.Help, []string{label}, nil),
		buckets: opts.Buckets,
	}
}

// shard adds a shard to the proto="udp" series, which it makes exist:
// Collect adds the shards to that series as the vec collects it.
func (l *latencyHistogram) shard() *latencyShard {
	l.vec.WithLabelValues("udp")
	s := &latencyShard{buckets: l.buckets}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shards = append(l.shards, s)
	return s
}

// observe records one reply's seconds. Only the shard's reader calls it.
func (s *latencyShard) observe(seconds float64) {
	s.counts[sort.SearchFloat64s(s.buckets, seconds)].Add(1)
	s.sumBits.Store(math.Float64bits(math.Float64frombits(s.sumBits.Load()) + seconds))
}

func (l *latencyHistogram) Describe(ch chan<- *prometheus.Desc) { l.vec.Describe(ch) }

// Collect passes on the vec's series, the udp one with the shards added.
func (l *latencyHistogram) Collect(ch chan<- prometheus.Metric) {
	series := make(chan prometheus.Metric, 2)
	go func() { l.vec.Collect(series); close(series) }()
	for m := range series {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil || len(pb.GetLabel()) != 1 || pb.GetLabel()[0].GetValue() != "udp" {
			ch <- m
			continue
		}
		ch <- l.withShards(pb.GetHistogram(), pb.GetLabel()[0].GetValue())
	}
}

// withShards is h plus every shard, as one histogram.
func (l *latencyHistogram) withShards(h *dto.Histogram, label string) prometheus.Metric {
	count, sum := h.GetSampleCount(), h.GetSampleSum()
	perBucket := make([]uint64, len(l.buckets))
	l.mu.Lock()
	for _, s := range l.shards {
		for i := range perBucket {
			perBucket[i] += s.counts[i].Load()
		}
		count += s.counts[len(perBucket)].Load()
		sum += math.Float64frombits(s.sumBits.Load())
	}
	l.mu.Unlock()
	cumulative := make(map[float64]uint64, len(l.buckets))
	var below uint64
	for i, b := range h.GetBucket() {
		below += perBucket[i]
		count += perBucket[i]
		cumulative[b.GetUpperBound()] = b.GetCumulativeCount() + below
	}
	return prometheus.MustNewConstHistogram(l.desc, count, sum, cumulative, label)
}
