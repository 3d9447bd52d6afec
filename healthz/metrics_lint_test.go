package healthz

import (
	"errors"
	"testing"
	"time"

	"github.com/skypod/skypod/internal/metricslint"
)

func TestMetricsPassPromlint(t *testing.T) {
	reg := metricslint.NewRegistry()
	NewMetrics(reg).observe("/healthz", errors.New("probe failed"), time.Second, true)
	metricslint.Check(t, reg)
}
