package cri

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Upstream kubelet metric names, so dashboards built for the kubelet work.
var (
	operationDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "kubelet",
		Name:      "runtime_operations_duration_seconds",
		Help:      "Duration in seconds of runtime operations. Broken down by operation type.",
		Buckets:   prometheus.ExponentialBuckets(.005, 2.5, 14),
	}, []string{"operation_type"})
	operationErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "kubelet",
		Name:      "runtime_operations_errors_total",
		Help:      "Cumulative number of runtime operation errors by operation type.",
	}, []string{"operation_type"})
)

// exitSeen is minikubelet's own: from a container's exit (the runtime's finishedAt) to
// the relist that wakes its pod's worker, driven by containerd's event stream.
var exitSeen = prometheus.NewHistogram(prometheus.HistogramOpts{
	Subsystem: "minikubelet",
	Name:      "container_exit_seen_seconds",
	Help:      "Time from a container's exit to its pod's worker being woken.",
	Buckets:   []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
})

// Collectors returns this package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{operationDuration, operationErrors, exitSeen}
}

func observe(op string, start time.Time, err error) {
	operationDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		operationErrors.WithLabelValues(op).Inc()
	}
}
