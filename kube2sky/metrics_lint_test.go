package kube2sky

import (
	"testing"

	"k8s.io/client-go/util/workqueue"

	"github.com/skypod/skypod/internal/metricslint"
)

func TestMetricsPassPromlint(t *testing.T) {
	reg := metricslint.NewRegistry()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[Owner]())
	defer queue.ShutDown()
	NewMetrics(reg).watchQueue(queue)
	metricslint.Check(t, reg)
}
