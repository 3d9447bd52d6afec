package kube2sky

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// Metrics are kube2sky's Prometheus metrics.
type Metrics struct {
	reg        prometheus.Registerer
	written    prometheus.Counter
	deleted    prometheus.Counter
	etcdErrors prometheus.Counter
	malformed  prometheus.Counter
	skipped    *prometheus.CounterVec
	syncs      prometheus.Counter
	latency    prometheus.Histogram
	lastResync prometheus.Gauge
	ready      prometheus.Gauge
	etcdUp     prometheus.Gauge
	noSpace    prometheus.Gauge
	leader     prometheus.Gauge
	transition prometheus.Counter
	fenced     prometheus.Counter
}

// NewMetrics registers kube2sky's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "records_written_total", Help: "Records put into etcd.",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "records_deleted_total", Help: "Records deleted from etcd.",
		}),
		etcdErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "etcd_errors_total", Help: "Failed etcd lists and transactions (each retried).",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "malformed_objects_total", Help: "Kubernetes objects skipped as malformed.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "skipped_records_total", Help: "Records left out because skydns could not serve them as meant, by reason; counted once while they stay so.",
		}, []string{"reason"}),
		syncs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "owner_syncs_total", Help: "Owners (a service, a pod IP) compared with etcd and, where they differed, repaired.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "kube2sky", Name: "event_to_etcd_seconds", Help: "From a Kubernetes change arriving to its records committed in etcd.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		lastResync: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kube2sky", Name: "last_resync_timestamp_seconds", Help: "When the last full comparison with etcd started.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kube2sky", Name: "ready", Help: "1 once the first full sync has completed.",
		}),
		etcdUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kube2sky", Name: "etcd_up", Help: "1 while etcd answers kube2sky's requests (at NOSPACE too: it answers, refusing writes).",
		}),
		noSpace: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kube2sky", Name: "etcd_nospace", Help: "1 while etcd's NOSPACE alarm is raised: it refuses kube2sky's writes until space is freed and the alarm disarmed.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "kube2sky", Name: "leader", Help: "1 while this kube2sky holds the leader Lease and writes (always 1 without --leader-elect).",
		}),
		transition: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "leader_transitions_total", Help: "Times this kube2sky became or stopped being the leader.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "kube2sky", Name: "fenced_transactions_total", Help: "etcd transactions refused because another kube2sky took the leader's term since this one did.",
		}),
	}
	for _, reason := range []string{skipExternalNameIP, skipLabel, skipValue} {
		m.skipped.WithLabelValues(reason) // Each reason shows from the start, at 0.
	}
	reg.MustRegister(m.written, m.deleted, m.etcdErrors, m.malformed, m.skipped, m.syncs, m.latency, m.lastResync, m.ready, m.etcdUp, m.noSpace,
		m.leader, m.transition, m.fenced)
	return m
}

func (m *Metrics) watchQueue(q workqueue.TypedRateLimitingInterface[Owner]) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "kube2sky", Name: "queue_depth", Help: "Owners waiting to be synced.",
	}, func() float64 { return float64(q.Len()) }))
}
