// Package metrics holds kubelet-wide metrics that parts of the kubelet observe and the
// kubelet API server (/metrics) exports. It depends on nothing else in minikubelet, so any
// part may import it.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// podStartDuration is upstream's kubelet_pod_start_duration_seconds (same name, help and
// buckets): from the pod's creation as the kubelet first saw it to all its containers
// reported running.
var podStartDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
	Subsystem: "kubelet",
	Name:      "pod_start_duration_seconds",
	Help:      "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
	Buckets:   []float64{0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600},
})

// ObservePodStart records one pod's start duration (call it once per pod, when all its
// containers are first seen running).
func ObservePodStart(d time.Duration) { podStartDuration.Observe(d.Seconds()) }

// Collectors returns this package's metrics for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{podStartDuration} }
