package kube2sky

import (
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// skipLog logs and counts each owner's skipped records once: a record that
// stays left out is not reported again at every sync of its owner (each
// endpoints change, each full resync), only after it was written or its
// owner had none left out in between.
type skipLog struct {
	log     *slog.Logger
	skipped *prometheus.CounterVec

	mu   sync.Mutex
	seen map[Owner]map[Skip]bool // Err left zero: a record and its reason.
}

func newSkipLog(log *slog.Logger, skipped *prometheus.CounterVec) *skipLog {
	return &skipLog{log: log, skipped: skipped, seen: map[Owner]map[Skip]bool{}}
}

// report notes what owner's latest sync left out, and forgets the rest.
func (l *skipLog) report(owner Owner, skips []Skip) {
	l.mu.Lock()
	defer l.mu.Unlock()
	before := l.seen[owner]
	now := make(map[Skip]bool, len(skips))
	for _, s := range skips {
		id := Skip{Name: s.Name, Reason: s.Reason}
		if now[id] {
			continue // The service's records and its PTRs both found it.
		}
		now[id] = true
		if !before[id] {
			l.skipped.WithLabelValues(s.Reason).Inc()
			l.log.Warn("skipping record skydns could not serve as meant", "owner", owner, "record", s.Name, "reason", s.Reason, "err", s.Err)
		}
	}
	if len(now) == 0 {
		delete(l.seen, owner)
		return
	}
	l.seen[owner] = now
}
