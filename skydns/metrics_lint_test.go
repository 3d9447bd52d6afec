package skydns

import (
	"testing"

	"github.com/skypod/skypod/internal/metricslint"
)

// Registers what Serve registers (run.go) and forwards once, so the
// forward counter has a label set to be gathered.
func TestMetricsPassPromlint(t *testing.T) {
	reg := metricslint.NewRegistry()
	NewMetrics(reg, NewIndex("skydns")).forwardResult("recursive", nil)
	reg.MustRegister(packedEntriesGauge(func() int { return 0 }))
	metricslint.Check(t, reg)
}
