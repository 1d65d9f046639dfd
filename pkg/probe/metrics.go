package probe

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
)

// Upstream's probe metrics (served on /metrics/probes upstream).
var (
	probeTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Subsystem: "prober",
		Name:      "probe_total",
		Help:      "Cumulative number of a liveness, readiness or startup probe for a container by result.",
	}, []string{"probe_type", "result", "container", "pod", "namespace"})
	probeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: "prober",
		Name:      "probe_duration_seconds",
		Help:      "Duration in seconds for a probe response.",
	}, []string{"probe_type", "container", "pod", "namespace"})
)

// Collectors returns the probe metrics for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{probeTotal, probeDuration} }

func observe(kind Kind, r Result, pod *v1.Pod, container string, d time.Duration) {
	result := "successful"
	switch r {
	case Failure:
		result = "failed"
	case Warning:
		result = "successful"
	}
	probeTotal.WithLabelValues(string(kind), result, container, pod.Name, pod.Namespace).Inc()
	probeDuration.WithLabelValues(string(kind), container, pod.Name, pod.Namespace).Observe(d.Seconds())
}
