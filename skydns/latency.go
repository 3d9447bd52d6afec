package skydns

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// latencyHistogram is skydns_dns_request_duration_seconds: a
// HistogramVec, and shards of it that scrapes add into its series, one
// shard per label value for each UDP reader and for each of the counter
// shards the other queries spread over (counterShard). A HistogramVec
// child is a few words every core writes for every query (its count, its
// sum's compare-and-swap, its bucket); a shard has one writer, or a few
// that seldom meet, so observing costs no shared cache line. The metric
// is the one it always was.
type latencyHistogram struct {
	vec     *prometheus.HistogramVec
	desc    *prometheus.Desc
	buckets []float64

	mu     sync.Mutex
	shards map[string][]*latencyShard // By label value.
}

// maxLatencyBuckets is the most buckets a shard holds: its counts are an
// array in the shard itself, not a slice of their own, which the
// allocator could place on a cache line next to another shard's.
const maxLatencyBuckets = 15

// latencyShard is one series' part that one writer (a UDP reader), or
// a few that seldom meet (counterShard), write, and scrapes read. The
// padding keeps other allocations' words off its cache lines.
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
		shards:  map[string][]*latencyShard{},
	}
}

// shard adds a shard to the series of label, which it makes exist:
// Collect adds the shards to that series as the vec collects it.
func (l *latencyHistogram) shard(label string) *latencyShard {
	l.vec.WithLabelValues(label)
	s := &latencyShard{buckets: l.buckets}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.shards[label] = append(l.shards[label], s)
	return s
}

// observe records one reply's seconds. The sum is a compare-and-swap,
// which a shard's one writer makes at the first try.
func (s *latencyShard) observe(seconds float64) {
	s.counts[sort.SearchFloat64s(s.buckets, seconds)].Add(1)
	for {
		old := s.sumBits.Load()
		if s.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+seconds)) {
			return
		}
	}
}

func (l *latencyHistogram) Describe(ch chan<- *prometheus.Desc) { l.vec.Describe(ch) }

// Collect passes on the vec's series, each with its shards added.
func (l *latencyHistogram) Collect(ch chan<- prometheus.Metric) {
	eachCollected(l.vec, func(m prometheus.Metric, pb *dto.Metric) {
		if pb == nil || len(pb.GetLabel()) != 1 {
			ch <- m
			return
		}
		ch <- l.withShards(pb.GetHistogram(), pb.GetLabel()[0].GetValue())
	})
}

// withShards is h plus every shard, as one histogram.
func (l *latencyHistogram) withShards(h *dto.Histogram, label string) prometheus.Metric {
	count, sum := h.GetSampleCount(), h.GetSampleSum()
	perBucket := make([]uint64, len(l.buckets))
	l.mu.Lock()
	for _, s := range l.shards[label] {
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
