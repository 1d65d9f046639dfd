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

// Collectors returns this package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{operationDuration, operationErrors}
}

func observe(op string, start time.Time, err error) {
	operationDuration.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil {
		operationErrors.WithLabelValues(op).Inc()
	}
}
