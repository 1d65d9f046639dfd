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

// Beyond upstream: the same start as seen in the status, and time to Ready (the
// transition trace observes both).
var (
	timeToRunning = prometheus.NewHistogram(prometheus.HistogramOpts{
		Subsystem: "minikubelet", Name: "pod_time_to_running_seconds",
		Help:    "Time from the node first seeing a pod to its status showing phase Running.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
	})
	timeToReady = prometheus.NewHistogram(prometheus.HistogramOpts{
		Subsystem: "minikubelet", Name: "pod_time_to_ready_seconds",
		Help:    "Time from the node first seeing a pod to its Ready condition turning True.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
	})
)

// Status write-back: every new status the node derives, and every patch of the status
// subresource it sends. Under a throttled API client the status manager keeps only each
// pod's newest status, so writes stay below changes (a burst is written once).
var (
	statusChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Subsystem: "minikubelet", Name: "pod_status_changes_total",
		Help: "New pod statuses derived by the node (each a version for the status manager).",
	})
	statusWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Subsystem: "minikubelet", Name: "pod_status_writes_total",
		Help: "Pod status patches sent to the API server.",
	})
)

// StatusChanged counts a new pod status; StatusWritten counts a status patch sent.
func StatusChanged() { statusChanges.Inc() }
func StatusWritten() { statusWrites.Inc() }

// ObserveRunning records a pod's first Running status, d after the node first saw it.
func ObserveRunning(d time.Duration) {
	timeToRunning.Observe(d.Seconds())
	podStartDuration.Observe(d.Seconds())
}

// ObserveReady records a pod's first Ready=True, d after the node first saw it.
func ObserveReady(d time.Duration) { timeToReady.Observe(d.Seconds()) }

// ObservePodStart records one pod's start duration (call it once per pod, when all its
// containers are first seen running).
func ObservePodStart(d time.Duration) { podStartDuration.Observe(d.Seconds()) }

// imagesCollected is upstream's kubelet_image_garbage_collected_total (same name, help
// and label): images removed by image garbage collection, by reason "age" or "space".
var imagesCollected = prometheus.NewCounterVec(prometheus.CounterOpts{
	Subsystem: "kubelet", Name: "image_garbage_collected_total",
	Help: "Total number of images garbage collected by the kubelet, whether through disk usage or image age.",
}, []string{"reason"})

// ImageCollected counts an image garbage collection removed, for reason "age" or "space".
func ImageCollected(reason string) { imagesCollected.WithLabelValues(reason).Inc() }

// evictions is upstream's kubelet_evictions (same name, help and label): pods evicted by
// the eviction manager, by signal (a threshold's, or ephemeralcontainerfs.limit,
// ephemeralpodfs.limit, emptydirfs.limit for local storage limits).
var evictions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Subsystem: "kubelet", Name: "evictions",
	Help: "[ALPHA] Cumulative number of pod evictions by eviction signal",
}, []string{"eviction_signal"})

// Evicted counts a pod evicted for signal.
func Evicted(signal string) { evictions.WithLabelValues(signal).Inc() }

// evictionStatsAge is upstream's kubelet_eviction_stats_age_seconds: how old the stats
// were that an eviction round acted on when it ranked pods, per met threshold's signal.
var evictionStatsAge = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Subsystem: "kubelet", Name: "eviction_stats_age_seconds",
	Help:    "[ALPHA] Time between when stats are collected, and when pod is evicted based on those stats by eviction signal",
	Buckets: prometheus.DefBuckets,
}, []string{"eviction_signal"})

// EvictionStatsAge records the age of the stats a ranking for signal's threshold used.
func EvictionStatsAge(signal string, age time.Duration) {
	evictionStatsAge.WithLabelValues(signal).Observe(age.Seconds())
}

// Collectors returns this package's metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{podStartDuration, timeToRunning, timeToReady, statusChanges, statusWrites, imagesCollected, evictions, evictionStatsAge}
}
